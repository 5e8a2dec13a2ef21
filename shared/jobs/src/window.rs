//! Local-time windows: a campaign's sending window, an SMS recipient's allowed hours.

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Whole local hours `[start_hour, end_hour)`; a window whose start is after its end runs
/// over midnight (22–6), and one whose start equals its end is always open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourWindow {
    pub start_hour: u32,
    pub end_hour: u32,
}

impl HourWindow {
    pub fn new(start_hour: u32, end_hour: u32) -> Result<Self, String> {
        if start_hour > 23 || end_hour > 24 {
            return Err(format!(
                "window hours must be 0–23 and 0–24, found {start_hour}–{end_hour}"
            ));
        }
        Ok(Self {
            start_hour,
            end_hour: end_hour % 24,
        })
    }

    fn contains_hour(&self, hour: u32) -> bool {
        match self.start_hour.cmp(&self.end_hour) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (self.start_hour..self.end_hour).contains(&hour),
            std::cmp::Ordering::Greater => hour >= self.start_hour || hour < self.end_hour,
        }
    }

    pub fn is_open(&self, now: DateTime<Utc>, zone: Tz) -> bool {
        self.contains_hour(now.with_timezone(&zone).hour())
    }

    /// The first moment at or after `now` when the window is open.
    pub fn next_open(&self, now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        if self.is_open(now, zone) {
            return now;
        }
        // Walk whole hours (DST-safe): at most a day ahead.
        let local = now.with_timezone(&zone);
        let top_of_hour = local
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(local);
        (1..=25)
            .map(|hours| top_of_hour + Duration::hours(hours))
            .find(|candidate| self.contains_hour(candidate.hour()))
            .map(|candidate| {
                zone.from_utc_datetime(&candidate.naive_utc())
                    .with_timezone(&Utc)
            })
            .unwrap_or(now)
    }
}

pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_is_judged_in_the_recipients_zone() {
        let window = HourWindow::new(9, 17).unwrap();
        let zone = parse_zone("America/New_York").unwrap();
        // 14:00 UTC is 09:00 in New York in November (EST): open
        assert!(window.is_open(at("2026-11-27T14:00:00Z"), zone));
        // 13:59 UTC is 08:59 there: closed, and it opens at 14:00 UTC
        assert!(!window.is_open(at("2026-11-27T13:59:00Z"), zone));
        assert_eq!(
            window.next_open(at("2026-11-27T13:59:00Z"), zone),
            at("2026-11-27T14:00:00Z")
        );
    }

    #[test]
    fn windows_over_midnight_and_all_day_windows() {
        let night = HourWindow::new(22, 6).unwrap();
        assert!(night.is_open(at("2026-11-27T23:30:00Z"), Tz::UTC));
        assert!(night.is_open(at("2026-11-27T05:30:00Z"), Tz::UTC));
        assert!(!night.is_open(at("2026-11-27T12:00:00Z"), Tz::UTC));
        assert_eq!(
            night.next_open(at("2026-11-27T12:10:00Z"), Tz::UTC),
            at("2026-11-27T22:00:00Z")
        );
        assert!(
            HourWindow::new(0, 24)
                .unwrap()
                .is_open(at("2026-11-27T12:00:00Z"), Tz::UTC)
        );
        assert!(HourWindow::new(25, 3).is_err());
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}
