//! The supervisor's side of feed freshness ([`crate::upgrade::freshness`]): the mark of the
//! newest signed feed accepted, kept in `upstream-feed-mark.json`, and whether the feed is stale.
//! Only when feed signatures are required (keys configured, signatures required, a source whose
//! documents are signed feeds: HTTP, local mirror) — otherwise `expires` and `sequence` are not
//! covered by any signature and mean nothing.

use time::OffsetDateTime;

use crate::instance::Instance;
use crate::model::feed_mark::FeedMark;
use crate::upgrade::freshness;

/// See the module docs.
#[derive(Debug)]
pub struct FeedGuard {
    mark: Option<FeedMark>,
    /// The mark cannot be read (why): fail closed — no feed is used until it can be, since
    /// a replay could not be told apart.
    problem: Option<String>,
    /// The time the clock doubt said last was judged against ([`freshness::clock_doubt`]):
    /// said once, and again when that changes or after it cleared.
    clock_said: Option<OffsetDateTime>,
}

impl FeedGuard {
    /// The guard, when this instance's feeds are signed and must be (else `None`).
    pub fn load(inst: &Instance) -> Option<FeedGuard> {
        if !freshness::applies(&inst.config) {
            return None;
        }
        let mut guard = FeedGuard {
            mark: None,
            problem: None,
            clock_said: None,
        };
        guard.reload(inst);
        Some(guard)
    }

    fn reload(&mut self, inst: &Instance) {
        match FeedMark::load(&inst.data.feed_mark()) {
            Ok(mark) => {
                self.mark = mark;
                self.problem = None;
            }
            Err(e) => {
                self.problem = Some(format!(
                    "{e}; no feed is used until it can be read (it holds the newest signed feed accepted, against replays); fix or remove it"
                ));
            }
        }
    }

    /// Whether this signed feed may be used (`Err`: why not); an accepted one becomes the mark.
    pub fn admit(
        &mut self,
        inst: &Instance,
        feed: &str,
        document: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), String> {
        if self.problem.is_some() {
            self.reload(inst);
        }
        if let Some(p) = &self.problem {
            return Err(p.clone());
        }
        let mark = freshness::judge(feed, document, self.mark.as_ref(), now)?;
        self.check_clock(mark.signed_at, now);
        if let Some(old) = self.mark.as_ref().filter(|m| m.feed != feed) {
            tracing::info!(
                "the upstream feed is now {feed}, not {}: the mark of the old one (sequence {}) no longer applies",
                old.feed,
                old.sequence.map_or("none".to_owned(), |s| s.to_string())
            );
        }
        // written when it changes, not at every poll of the same feed
        let key = |m: &FeedMark| (m.feed.clone(), m.sha256.clone(), m.sequence);
        if self.mark.as_ref().map(key) != Some(key(&mark)) {
            mark.save(&inst.data.feed_mark()).map_err(|e| {
                format!(
                    "{e}; the feed is not used until its mark can be recorded (against replays)"
                )
            })?;
            self.mark = Some(mark);
        }
        Ok(())
    }

    /// Reports a clock that looks wrong (a warning once; the node keeps running): behind the
    /// signer of the feed just fetched (`signed_at`), or gone back behind the mark.
    pub fn check_clock(&mut self, signed_at: Option<OffsetDateTime>, now: OffsetDateTime) {
        let doubt = freshness::clock_doubt(signed_at, self.mark.as_ref(), now);
        let reference = doubt.as_ref().map(|d| d.reference);
        if reference != self.clock_said {
            match &doubt {
                Some(d) => tracing::warn!("{}", d.message),
                None => tracing::info!("this machine's clock agrees with the signed feed again"),
            }
            self.clock_said = reference;
        }
    }

    /// Why the feed counts as stale now (the accepted feed expired, or the mark is unreadable).
    pub fn stale(&self, now: OffsetDateTime) -> Option<String> {
        self.problem
            .clone()
            .or_else(|| freshness::stale(self.mark.as_ref(), now))
    }
}
