//! RFC 3339 timestamps in UTC, as Syncthing's JSON carries them (Go's `time.Time`).

use std::time::{SystemTime, UNIX_EPOCH};

use syncd_conflict::LocalTime;

/// Go's zero time, which Syncthing prints for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `2026-11-27T21:55:32Z` (seconds precision).
pub fn rfc3339(t: SystemTime) -> String {
    format(t, false)
}

/// `2026-11-27T21:55:33.609366258Z` (nanosecond precision, trailing zeros trimmed, as Go's
/// `RFC3339Nano`).
pub fn rfc3339_nano(t: SystemTime) -> String {
    format(t, true)
}

/// [`rfc3339`] of `Some`, Go's zero time for `None`.
pub fn rfc3339_or_zero(t: Option<SystemTime>) -> String {
    t.map_or_else(|| ZERO_TIME.to_owned(), rfc3339)
}

fn format(t: SystemTime, nanos: bool) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // The calendar arithmetic is the conflict namer's (one implementation in the tree).
    let c = LocalTime::from_unix(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), 0);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    let n = d.subsec_nanos();
    if nanos && n != 0 {
        let frac = format!("{n:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    } else {
        format!("{base}Z")
    }
}

/// Parses an RFC 3339 timestamp (`2026-01-02T16:04:05+01:00`, `…Z`, with or without a
/// fraction, which is dropped); `None` when it is not one or lies before 1970.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    // Version times are whole seconds: a fraction is dropped.
    UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_back_what_it_prints_and_other_offsets() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_767_366_245);
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("2026-01-02T16:04:05+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-01-02T15:04:05.5Z"), Some(t));
        for bad in [
            "",
            "2026-01-02",
            "2026-13-02T15:04:05Z",
            "2026-01-02T15:04:05+1",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        for (secs, nanos, want, want_nano) in [
            (0, 0, "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
            (
                951_782_400,
                0,
                "2000-02-29T00:00:00Z",
                "2000-02-29T00:00:00Z",
            ),
            (
                1_795_816_533,
                609_366_258,
                "2026-11-27T21:55:33Z",
                "2026-11-27T21:55:33.609366258Z",
            ),
            (
                1_795_816_533,
                500_000_000,
                "2026-11-27T21:55:33Z",
                "2026-11-27T21:55:33.5Z",
            ),
        ] {
            let t = UNIX_EPOCH + Duration::new(secs, nanos);
            assert_eq!(rfc3339(t), want);
            assert_eq!(rfc3339_nano(t), want_nano);
        }
    }

    #[test]
    fn none_is_go_zero_time() {
        assert_eq!(rfc3339_or_zero(None), "0001-01-01T00:00:00Z");
    }
}
