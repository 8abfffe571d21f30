//! When an upstream upgrade may be applied on this node: its `upgradeTime`, plus this instance's
//! share of the fleet's spread, moved into the next maintenance window. Pure functions; the
//! clock and the seed are passed in.
//!
//! - **Spread.** Each instance draws a random seed once (kept with its data, across restarts and
//!   upgrades). An upgrade named `n` is applied at `upgradeTime + offset(seed, n)`, the offset
//!   uniform in `[0, spread)`: a fleet restarts a few nodes at a time, and one operator's nodes do
//!   not move in lockstep (each has its own seed), while a node's offset for a release is stable.
//! - **Windows** (`Mon-Fri 02:00-05:00, Sun 00:00-06:00`, UTC): a time outside every window moves
//!   to the next window's start plus the offset, kept inside the window (the offset modulo the
//!   window's length).

use std::fmt;
use std::time::Duration;

use time::{OffsetDateTime, Weekday};

/// A per-instance random seed.
pub type Seed = u64;

/// The splitmix64 finaliser: a bijection that spreads every input bit over every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// This instance's offset for upgrade `name`, uniform in `[0, spread)`, stable for a seed.
pub fn offset(seed: Seed, name: &str, spread: Duration) -> Duration {
    if spread.is_zero() {
        return Duration::ZERO;
    }
    // FNV-1a over the name, keyed by the seed, then mixed
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ mix(seed);
    for b in name.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let r = mix(h ^ seed.rotate_left(17));
    // r / 2^64 in [0, 1), times the spread in nanoseconds
    let nanos = (u128::from(r) * spread.as_nanos()) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// One maintenance window: on the given weekdays, from `start` to `end` (minutes after
/// midnight UTC; an end before the start runs past midnight into the next day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Bit `n` set: the window opens on weekday `n` (0 = Monday).
    days: u8,
    start: u32,
    end: u32,
}

impl Window {
    /// Its length in minutes.
    fn minutes(&self) -> u32 {
        if self.end > self.start {
            self.end - self.start
        } else {
            24 * 60 - self.start + self.end
        }
    }
}

/// A set of maintenance windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    windows: Vec<Window>,
    text: String,
}

impl fmt::Display for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_day(s: &str) -> Result<u8, String> {
    let l = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| l == *d || (l.len() > 3 && d.starts_with(&l[..3]) && is_day_name(&l)))
        .map(|i| i as u8)
        .ok_or_else(|| format!("{s:?} is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn is_day_name(l: &str) -> bool {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .contains(&l)
}

fn parse_time(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time of day such as 02:00");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Windows {
    /// Parses `Mon-Fri 02:00-05:00, Sun 00:00-06:00`: comma-separated windows, each a weekday,
    /// a range of weekdays (`Fri-Mon` wraps), `daily` or `*`, then `HH:MM-HH:MM` in UTC.
    pub fn parse(text: &str) -> Result<Windows, String> {
        let mut windows = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (days, hours) = part.rsplit_once(char::is_whitespace).ok_or_else(|| {
                format!("{part:?}: expected days and hours, such as `Mon-Fri 02:00-05:00`")
            })?;
            let days = match days.trim().to_ascii_lowercase().as_str() {
                "daily" | "*" | "every day" => 0x7f,
                d => match d.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (parse_day(a)?, parse_day(b)?);
                        let mut mask = 0u8;
                        let mut i = a;
                        loop {
                            mask |= 1 << i;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                        mask
                    }
                    None => 1 << parse_day(d)?,
                },
            };
            let (start, end) = hours
                .split_once('-')
                .ok_or_else(|| format!("{hours:?}: expected hours such as 02:00-05:00"))?;
            let (start, end) = (parse_time(start)?, parse_time(end)?);
            if start == end {
                return Err(format!("{part:?}: the window is empty"));
            }
            windows.push(Window { days, start, end });
        }
        if windows.is_empty() {
            return Err("no window given".to_owned());
        }
        Ok(Windows {
            windows,
            text: text.trim().to_owned(),
        })
    }

    /// The window that contains `t`, as (its start, its length), if any.
    fn containing(&self, t: OffsetDateTime) -> Option<(OffsetDateTime, Duration)> {
        let t = t.to_offset(time::UtcOffset::UTC);
        let minute = u32::from(t.hour()) * 60 + u32::from(t.minute());
        let day = t.weekday().number_days_from_monday();
        let midnight = t.replace_time(time::Time::MIDNIGHT);
        for w in &self.windows {
            let len = Duration::from_secs(u64::from(w.minutes()) * 60);
            // opened today
            if w.days & (1 << day) != 0 {
                let start = midnight + Duration::from_secs(u64::from(w.start) * 60);
                if t >= start && t < start + len {
                    return Some((start, len));
                }
            }
            // opened yesterday and runs past midnight
            let yesterday = (day + 6) % 7;
            if w.end <= w.start && w.days & (1 << yesterday) != 0 && minute < w.end {
                let start = midnight - Duration::from_secs(24 * 3600)
                    + Duration::from_secs(u64::from(w.start) * 60);
                return Some((start, len));
            }
        }
        None
    }

    /// The next window start at or after `t`, with its length.
    fn next_start(&self, t: OffsetDateTime) -> (OffsetDateTime, Duration) {
        let t = t.to_offset(time::UtcOffset::UTC);
        let midnight = t.replace_time(time::Time::MIDNIGHT);
        let mut best: Option<(OffsetDateTime, Duration)> = None;
        // within eight days every weekday is seen
        for d in 0..8u64 {
            let day_start = midnight + Duration::from_secs(d * 24 * 3600);
            let wd = day_start.weekday().number_days_from_monday();
            for w in &self.windows {
                if w.days & (1 << wd) == 0 {
                    continue;
                }
                let start = day_start + Duration::from_secs(u64::from(w.start) * 60);
                if start >= t && best.is_none_or(|(b, _)| start < b) {
                    best = Some((start, Duration::from_secs(u64::from(w.minutes()) * 60)));
                }
            }
            if best.is_some() {
                break;
            }
        }
        // parse() refuses an empty set, so a start is always found within a week
        best.unwrap_or((t, Duration::ZERO))
    }

    /// When something due at `t` may happen: `t` itself inside a window, else the next window's
    /// start plus `offset`, kept inside that window.
    pub fn place(&self, t: OffsetDateTime, offset: Duration) -> OffsetDateTime {
        if self.containing(t).is_some() {
            return t;
        }
        let (start, len) = self.next_start(t);
        if len.is_zero() {
            return start;
        }
        let inside = Duration::from_nanos((offset.as_nanos() % len.as_nanos()) as u64);
        start + inside
    }

    /// Whether `t` lies in a window.
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.containing(t).is_some()
    }
}

/// What moves an upgrade's time on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timing {
    pub seed: Seed,
    pub spread: Duration,
    pub windows: Option<Windows>,
}

/// When an upgrade may be applied, and why it is later than its `upgradeTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub at: OffsetDateTime,
    /// The window rule moved it (else only the spread, if anything).
    pub by_window: bool,
}

impl Timing {
    /// When the upstream upgrade `name`, due at `upgrade_time`, may be applied.
    pub fn place(&self, name: &str, upgrade_time: OffsetDateTime) -> Placed {
        let offset = offset(self.seed, name, self.spread);
        let spread = upgrade_time + offset;
        match &self.windows {
            Some(w) => {
                let at = w.place(spread, offset);
                Placed {
                    at,
                    by_window: at != spread,
                }
            }
            None => Placed {
                at: spread,
                by_window: false,
            },
        }
    }
}

/// Parses a weekday-free check of a window set, for configuration validation.
pub fn validate_windows(text: &str) -> Result<(), String> {
    Windows::parse(text).map(|_| ())
}

/// A weekday's short English name (for messages).
pub fn weekday_name(d: Weekday) -> &'static str {
    DAYS[d.number_days_from_monday() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn offsets_are_uniform_and_stable() {
        let spread = Duration::from_secs(24 * 3600);
        let mut buckets = [0u32; 24];
        for seed in 0..10_000u64 {
            let o = offset(
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                "v2026.9-venaco",
                spread,
            );
            assert!(o < spread);
            buckets[(o.as_secs() / 3600) as usize] += 1;
        }
        // chi-square with 23 degrees of freedom: 49.7 is the 0.1 % critical value
        let expected = 10_000.0 / 24.0;
        let chi2: f64 = buckets
            .iter()
            .map(|&n| (f64::from(n) - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 49.7, "chi-square {chi2:.1}: {buckets:?}");
        // stable for a seed and name; another name or seed gives another offset
        let a = offset(42, "v1", spread);
        assert_eq!(a, offset(42, "v1", spread));
        assert_ne!(a, offset(42, "v2", spread));
        assert_ne!(a, offset(43, "v1", spread));
        assert_eq!(offset(42, "v1", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn offsets_spread_over_names_too() {
        let spread = Duration::from_secs(3600);
        let mut buckets = [0u32; 10];
        for i in 0..5_000 {
            let o = offset(7, &format!("v1.{i}.0"), spread);
            buckets[(o.as_secs() / 360) as usize] += 1;
        }
        let expected = 500.0;
        let chi2: f64 = buckets
            .iter()
            .map(|&n| (f64::from(n) - expected).powi(2) / expected)
            .sum();
        // 9 degrees of freedom: 27.9 is the 0.1 % critical value
        assert!(chi2 < 27.9, "chi-square {chi2:.1}: {buckets:?}");
    }

    #[test]
    fn window_parsing() {
        let w = Windows::parse("Mon-Fri 02:00-05:00, Sun 00:00-06:00").unwrap();
        assert_eq!(w.windows.len(), 2);
        assert_eq!(w.windows[0].days, 0b0001_1111);
        assert_eq!(w.windows[1].days, 0b0100_0000);
        assert_eq!((w.windows[0].start, w.windows[0].end), (120, 300));
        assert_eq!(
            Windows::parse("Fri-Mon 22:00-02:00").unwrap().windows[0].days,
            0b111_0001
        );
        assert!(Windows::parse("daily 01:00-02:00").is_ok());
        assert!(Windows::parse("sunday 01:00-02:00").is_ok());
        for bad in [
            "",
            "Mon",
            "Mon 2-5",
            "Funday 01:00-02:00",
            "Mon 25:00-26:00",
            "Mon 01:00-01:00",
            "Mon 01:60-02:00",
        ] {
            assert!(Windows::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn placing_into_windows_across_days_and_weeks() {
        let w = Windows::parse("Mon-Fri 02:00-05:00, Sun 00:00-06:00").unwrap();
        // 2026-11-28 is a Saturday
        let sat_noon = datetime!(2026-11-28 12:00 UTC);
        assert_eq!(sat_noon.weekday(), Weekday::Saturday);
        assert!(!w.contains(sat_noon));
        // next window: Sunday 00:00
        assert_eq!(
            w.place(sat_noon, Duration::ZERO),
            datetime!(2026-11-29 00:00 UTC)
        );
        // with an offset, kept inside the 6 h window
        assert_eq!(
            w.place(sat_noon, Duration::from_secs(7 * 3600)),
            datetime!(2026-11-29 01:00 UTC)
        );
        // inside a window: unchanged
        let mon = datetime!(2026-11-30 03:30 UTC);
        assert_eq!(w.place(mon, Duration::from_secs(600)), mon);
        // Friday after its window: the next one is Sunday's
        let fri = datetime!(2026-12-04 06:00 UTC);
        assert_eq!(
            w.place(fri, Duration::ZERO),
            datetime!(2026-12-06 00:00 UTC)
        );
        // Sunday evening: Monday 02:00
        let sun = datetime!(2026-11-29 18:00 UTC);
        assert_eq!(
            w.place(sun, Duration::ZERO),
            datetime!(2026-11-30 02:00 UTC)
        );
        // a window across midnight, entered the day before
        let night = Windows::parse("Sat 22:00-02:00").unwrap();
        assert!(night.contains(datetime!(2026-11-29 01:00 UTC)));
        assert!(!night.contains(datetime!(2026-11-29 03:00 UTC)));
        assert_eq!(
            night.place(datetime!(2026-11-29 03:00 UTC), Duration::ZERO),
            datetime!(2026-12-05 22:00 UTC),
            "a week later"
        );
        // end of the year
        let nye = Windows::parse("Thu 23:00-23:30").unwrap();
        assert_eq!(
            nye.place(datetime!(2026-12-31 23:45 UTC), Duration::ZERO),
            datetime!(2027-01-07 23:00 UTC)
        );
    }

    #[test]
    fn timing_combines_spread_and_windows() {
        let t = Timing {
            seed: 1,
            spread: Duration::from_secs(6 * 3600),
            windows: None,
        };
        let at = datetime!(2026-11-28 12:00 UTC);
        let p = t.place("v1", at);
        assert!(p.at >= at && p.at < at + Duration::from_secs(6 * 3600));
        assert!(!p.by_window);
        let t = Timing {
            windows: Some(Windows::parse("Sun 00:00-06:00").unwrap()),
            ..t
        };
        let p = t.place("v1", at);
        assert!(p.by_window);
        assert!(p.at >= datetime!(2026-11-29 00:00 UTC) && p.at < datetime!(2026-11-29 06:00 UTC));
        assert_eq!(weekday_name(Weekday::Sunday), "sun");
    }
}
