//! state.json's times (RFC 3339, UTC) as an operator reads them: in the local zone, named
//! (`2026-12-03 18:42:10 CET`), and how long ago (`12 s ago`, `in 1 min 40 s`).

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Now and the zone to show times in.
#[derive(Debug, Clone)]
pub struct Clock {
    pub now: Timestamp,
    pub zone: TimeZone,
}

impl Clock {
    /// The system's: TZ, else /etc/localtime, else UTC.
    pub fn system() -> Clock {
        Clock {
            now: Timestamp::now(),
            zone: TimeZone::system(),
        }
    }

    /// `2026-12-03 18:42:10 CET`; text that is not a timestamp, as it is.
    pub fn absolute(&self, stamp: &str) -> String {
        let Ok(t) = stamp.parse::<Timestamp>() else {
            return stamp.to_string();
        };
        let local = t.to_zoned_datetime(self.zone.clone());
        let zone = local.strftime("%Z").to_string();
        // A zone without an abbreviation (tzdata's "-03") is named by its offset.
        let zone = if zone.starts_with(['+', '-']) {
            format!("UTC{zone}")
        } else {
            zone
        };
        format!("{} {zone}", local.strftime("%Y-%m-%d %H:%M:%S"))
    }

    /// `12 s ago`, `in 1 min 40 s`; None for text that is not a timestamp.
    pub fn age(&self, stamp: &str) -> Option<String> {
        let t = stamp.parse::<Timestamp>().ok()?;
        let ms = self.now.as_millisecond() - t.as_millisecond();
        let secs = (ms / 1000).unsigned_abs();
        Some(if ms >= 0 {
            format!("{} ago", span(secs))
        } else {
            format!("in {}", span(secs))
        })
    }
}

/// A length in its two largest units: `42 s`, `4 min 10 s`, `2 h 5 min`, `3 d 4 h`.
pub fn span(secs: u64) -> String {
    let two = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => two(secs / 60, "min", secs % 60, "s"),
        3_600..86_400 => two(secs / 3_600, "h", secs % 3_600 / 60, "min"),
        _ => two(secs / 86_400, "d", secs % 86_400 / 3_600, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(now: &str, zone: TimeZone) -> Clock {
        Clock {
            now: now.parse().unwrap(),
            zone,
        }
    }

    #[test]
    fn times_are_shown_in_the_zone_with_its_name() {
        let utc = clock("2026-12-03T17:42:22Z", TimeZone::UTC);
        assert_eq!(
            utc.absolute("2026-12-03T17:42:10.342Z"),
            "2026-12-03 17:42:10 UTC"
        );
        // Central Europe, without relying on the host's tzdata: winter and summer time.
        let cet = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let berlin = clock("2026-12-03T17:42:22Z", cet);
        assert_eq!(
            berlin.absolute("2026-12-03T17:42:10.342Z"),
            "2026-12-03 18:42:10 CET"
        );
        assert_eq!(
            berlin.absolute("2026-07-01T23:30:00.000Z"),
            "2026-07-02 01:30:00 CEST"
        );
        let offset_only = TimeZone::posix("<-03>3").unwrap();
        assert_eq!(
            clock("2026-12-03T17:42:22Z", offset_only).absolute("2026-12-03T17:42:10Z"),
            "2026-12-03 14:42:10 UTC-03"
        );
    }

    #[test]
    fn ages_say_how_long_ago_or_how_long_until() {
        let c = clock("2026-12-03T17:42:22.900Z", TimeZone::UTC);
        assert_eq!(
            c.age("2026-12-03T17:42:10.342Z").as_deref(),
            Some("12 s ago")
        );
        assert_eq!(
            c.age("2026-12-03T17:44:03.000Z").as_deref(),
            Some("in 1 min 40 s")
        );
        assert_eq!(
            c.age("2026-12-01T15:00:00Z").as_deref(),
            Some("2 d 2 h ago")
        );
    }

    #[test]
    fn text_that_is_no_timestamp_is_shown_as_it_is() {
        let c = clock("2026-12-03T17:42:22Z", TimeZone::UTC);
        assert_eq!(c.absolute("soon"), "soon");
        assert_eq!(c.absolute(""), "");
        assert_eq!(c.age("soon"), None);
    }

    #[test]
    fn spans_use_their_two_largest_units() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(59), "59 s");
        assert_eq!(span(60), "1 min");
        assert_eq!(span(250), "4 min 10 s");
        assert_eq!(span(7_500), "2 h 5 min");
        assert_eq!(span(3 * 86_400 + 4 * 3_600 + 59), "3 d 4 h");
    }
}
