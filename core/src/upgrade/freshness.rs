//! Freshness and replay protection of signed feeds (pure, clock passed in).
//!
//! A signed feed document may carry `expires` (RFC 3339) and `sequence` (an integer that grows
//! with every signing). When feed signatures are required:
//! - a feed whose `expires` is past is refused as stale, and upgrades queued from upstream wait
//!   until a fresh feed comes (a frozen mirror raises an alert instead of looking quiet);
//! - a feed whose `sequence` is lower than the highest this instance accepted is a replay; an
//!   equal sequence with other bytes is equivocation; a feed without a sequence after one with
//!   is a replay too (the mark would otherwise be lost) — all refused;
//! - a feed that expires further ahead than [`MAX_VALIDITY`] is refused (a signer's mistake
//!   that would switch the freshness check off).
//!
//! The mark ([`FeedMark`]) is what the instance accepted last; it survives restarts.
//!
//! Clock sanity ([`clock_doubt`]): expiry is judged by this machine's clock, so a clock that is
//! far behind would take an expired feed for a fresh one. A feed signed (`signedAt`, written by
//! `mirror sync`) more than [`MAX_CLOCK_SKEW`] ahead of this clock, or a clock earlier than
//! when the newest accepted feed was signed or accepted, is reported — never refused: the node
//! keeps running and the operator fixes the clock.

use sha2::Digest;
use time::OffsetDateTime;

use crate::model::feed_mark::FeedMark;

/// The longest validity a feed may claim (a year).
pub const MAX_VALIDITY: time::Duration = time::Duration::days(366);

/// The way out when the publisher really started over.
const RESTART: &str = " (if the mirror's publisher really started its sequence over, remove upstream-feed-mark.json next to the upgrade plan)";

/// How far ahead of this machine's clock a feed's signing time may be without a report.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// What a feed says about its own freshness (the rest of the document is the upgrade).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    #[serde(default)]
    pub sequence: Option<u64>,
    /// When it was signed (`mirror sync` writes it); for the clock sanity report only.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub signed_at: Option<OffsetDateTime>,
}

impl Claims {
    /// The claims of a feed document. A malformed `expires` or `sequence` is an error: a signer
    /// meant something by it.
    pub fn of(document: &[u8]) -> Result<Claims, String> {
        serde_json::from_slice(document).map_err(|e| {
            format!("the feed's `expires`, `sequence` or `signedAt` is malformed ({e}); expected RFC 3339 times and an integer")
        })
    }
}

/// Whether the rules apply: feeds are signed and must be — keys configured, signatures
/// required, and a source whose documents are signed feeds (HTTP, local mirror).
pub fn applies(config: &crate::config::Config) -> bool {
    config.signature_required()
        && !config.daemon.minisign_public_keys.is_empty()
        && matches!(
            config.nymvisor.upstream_source,
            crate::config::UpstreamSource::Http | crate::config::UpstreamSource::Local
        )
}

/// SHA-256 of a feed's bytes, hex.
pub fn digest(document: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(document))
}

/// Whether a signed feed may be used, given the mark: `Ok` with the new mark, or why not.
pub fn judge(
    feed: &str,
    document: &[u8],
    mark: Option<&FeedMark>,
    now: OffsetDateTime,
) -> Result<FeedMark, String> {
    // the mark of another feed does not apply (the instance was moved to another mirror)
    let mark = mark.filter(|m| m.feed == feed);
    let claims = Claims::of(document)?;
    let sha256 = digest(document);
    if let Some(expires) = claims.expires {
        if expires <= now {
            return Err(format!(
                "the feed is stale: it expired at {}; the mirror has stopped signing fresh feeds (nothing from it is used until it does)",
                crate::model::rfc3339(expires)
            ));
        }
        if expires - now > MAX_VALIDITY {
            return Err(format!(
                "the feed claims to be valid until {}, more than a year ahead; refused (re-sign it with a shorter `expires`)",
                crate::model::rfc3339(expires)
            ));
        }
    }
    if let Some(mark) = mark
        && let Some(accepted) = mark.sequence
    {
        match claims.sequence {
            None => {
                return Err(format!(
                    "the feed has no `sequence`, but this instance accepted sequence {accepted}: refused as a replay{RESTART}"
                ));
            }
            Some(s) if s < accepted => {
                return Err(format!(
                    "the feed's sequence {s} is lower than {accepted}, which this instance accepted: refused as a replay of an older feed{RESTART}"
                ));
            }
            Some(s) if s == accepted && sha256 != mark.sha256 => {
                return Err(format!(
                    "the feed's sequence {s} is the one this instance accepted, with other contents: refused (two different feeds signed with one sequence)"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(FeedMark {
        feed: feed.to_owned(),
        sequence: claims.sequence,
        sha256,
        expires: claims.expires,
        signed_at: claims.signed_at,
        accepted_at: now,
    })
}

/// A doubt about this machine's clock: the message, and the time it is judged against (a
/// report is repeated only when that changes, not with every tick of the clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockDoubt {
    pub reference: OffsetDateTime,
    pub message: String,
}

/// What looks wrong with this machine's clock, judged from the signing time of a feed just
/// fetched (`signed_at`) and from the mark of the newest feed accepted before (see the module
/// docs). A report, never a refusal.
pub fn clock_doubt(
    signed_at: Option<OffsetDateTime>,
    mark: Option<&FeedMark>,
    now: OffsetDateTime,
) -> Option<ClockDoubt> {
    if let Some(t) = signed_at
        && t - now > MAX_CLOCK_SKEW
    {
        return Some(doubt(
            t,
            format!(
                "the feed was signed at {}, {} ahead of this machine's clock ({}): this clock is behind (or the signer's is ahead), and expiry is judged by it; check the time synchronisation (timedatectl)",
                crate::model::rfc3339(t),
                ahead(t - now),
                crate::model::rfc3339(now)
            ),
        ));
    }
    let mark = mark?;
    let (what, t) = [
        ("signed", mark.signed_at),
        ("accepted", Some(mark.accepted_at)),
    ]
    .into_iter()
    .filter_map(|(w, t)| Some((w, t?)))
    .max_by_key(|(_, t)| *t)?;
    (t - now > MAX_CLOCK_SKEW).then(|| {
        doubt(t, format!(
            "this machine's clock ({}) is earlier than when the newest feed accepted was {what} ({}): the clock went back, and expiry is judged by it; check the time synchronisation (timedatectl)",
            crate::model::rfc3339(now),
            crate::model::rfc3339(t)
        ))
    })
}

fn doubt(reference: OffsetDateTime, message: String) -> ClockDoubt {
    ClockDoubt { reference, message }
}

/// A lead in whole minutes, or whole seconds when under a minute.
fn ahead(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs - secs % 60)).to_string()
}

/// Why the accepted feed is stale now (its `expires` is past), if it is.
pub fn stale(mark: Option<&FeedMark>, now: OffsetDateTime) -> Option<String> {
    let expires = mark?.expires?;
    (expires <= now).then(|| {
        format!(
            "the feed is stale: the last one accepted expired at {}, and no fresher signed feed came since; upgrades from upstream wait for one",
            crate::model::rfc3339(expires)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);
    const F: &str = "https://mirror.example/nym-node/upgrade-info.json";

    #[test]
    fn the_mark_of_another_feed_does_not_apply() {
        let m = judge(F, &doc(None, Some(5), "1.3.0"), None, NOW).unwrap();
        let other = "https://other.example/nym-node/upgrade-info.json";
        assert_eq!(
            judge(other, &doc(None, Some(1), "1.2.0"), Some(&m), NOW)
                .unwrap()
                .sequence,
            Some(1)
        );
    }

    fn doc(expires: Option<&str>, sequence: Option<u64>, version: &str) -> Vec<u8> {
        let mut v = serde_json::json!({ "name": "v", "version": version });
        if let Some(e) = expires {
            v["expires"] = e.into();
        }
        if let Some(s) = sequence {
            v["sequence"] = s.into();
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_feed_without_claims_is_accepted_and_never_stale() {
        let m = judge(F, &doc(None, None, "1.2.0"), None, NOW).unwrap();
        assert_eq!(m.sequence, None);
        assert_eq!(stale(Some(&m), NOW + time::Duration::days(1000)), None);
        // and a later one without claims too
        judge(F, &doc(None, None, "1.3.0"), Some(&m), NOW).unwrap();
    }

    #[test]
    fn expired_feeds_are_stale() {
        let e = judge(
            F,
            &doc(Some("2026-12-06T11:59:59Z"), Some(3), "1.2.0"),
            None,
            NOW,
        )
        .unwrap_err();
        assert!(e.contains("expired at 2026-12-06T11:59:59Z"), "{e}");
        let m = judge(
            F,
            &doc(Some("2026-12-13T12:00:00Z"), Some(3), "1.2.0"),
            None,
            NOW,
        )
        .unwrap();
        assert_eq!(stale(Some(&m), NOW), None);
        assert!(stale(Some(&m), datetime!(2026-12-13 12:00 UTC)).is_some());
        assert_eq!(stale(None, NOW), None);
    }

    #[test]
    fn validity_beyond_a_year_is_refused() {
        let e = judge(
            F,
            &doc(Some("2036-01-01T00:00:00Z"), None, "1.2.0"),
            None,
            NOW,
        )
        .unwrap_err();
        assert!(e.contains("more than a year"), "{e}");
    }

    #[test]
    fn lower_or_missing_sequences_are_replays_and_equal_ones_must_match() {
        let five = doc(None, Some(5), "1.3.0");
        let m = judge(F, &five, None, NOW).unwrap();
        assert_eq!(m.sequence, Some(5));
        let e = judge(F, &doc(None, Some(4), "1.2.0"), Some(&m), NOW).unwrap_err();
        assert!(e.contains("replay"), "{e}");
        let e = judge(F, &doc(None, None, "1.2.0"), Some(&m), NOW).unwrap_err();
        assert!(e.contains("replay"), "{e}");
        let e = judge(F, &doc(None, Some(5), "1.2.0"), Some(&m), NOW).unwrap_err();
        assert!(e.contains("other contents"), "{e}");
        // the same feed again, and a newer one
        assert_eq!(judge(F, &five, Some(&m), NOW).unwrap().sha256, m.sha256);
        assert_eq!(
            judge(F, &doc(None, Some(6), "1.2.0"), Some(&m), NOW)
                .unwrap()
                .sequence,
            Some(6)
        );
    }

    #[test]
    fn a_clock_behind_the_signer_or_behind_an_earlier_acceptance_is_reported() {
        let signed = |t: &str| {
            let mut v: serde_json::Value =
                serde_json::from_slice(&doc(Some("2026-12-13T12:00:00Z"), Some(1), "1.2.0"))
                    .unwrap();
            v["signedAt"] = t.into();
            serde_json::to_vec(&v).unwrap()
        };
        // signed a minute "ahead": within the skew
        let m = judge(F, &signed("2026-12-06T12:01:00Z"), None, NOW).unwrap();
        assert_eq!(m.signed_at, Some(datetime!(2026-12-06 12:01 UTC)));
        assert_eq!(clock_doubt(m.signed_at, None, NOW), None);
        // an hour ahead: this clock is behind
        let d = clock_doubt(Some(datetime!(2026-12-06 13:00 UTC)), None, NOW).unwrap();
        assert!(
            d.message.contains("1h ahead of this machine's clock"),
            "{d:?}"
        );
        // the same doubt a minute later: the same reference, so it is not said again
        let later = clock_doubt(
            Some(datetime!(2026-12-06 13:00 UTC)),
            None,
            NOW + time::Duration::minutes(1),
        )
        .unwrap();
        assert_eq!(later.reference, d.reference);
        // later polls: the clock went back a day behind the mark
        let yesterday = NOW - time::Duration::days(1);
        let d = clock_doubt(None, Some(&m), yesterday).unwrap();
        assert!(d.message.contains("the clock went back"), "{d:?}");
        assert!(
            d.message.contains("was signed (2026-12-06T12:01:00Z)"),
            "{d:?}"
        );
        assert_eq!(clock_doubt(None, Some(&m), NOW), None);
        assert_eq!(clock_doubt(None, None, NOW), None);
        // a malformed signing time is a malformed feed
        let e = judge(F, br#"{"signedAt":"today"}"#, None, NOW).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn malformed_claims_are_refused() {
        let e = judge(F, br#"{"expires":"next week"}"#, None, NOW).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
        let e = judge(F, br#"{"sequence":-1}"#, None, NOW).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }
}
