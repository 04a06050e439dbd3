//! RFC 3339 timestamps in UTC, as Syncthing's JSON carries them (Go's `time.Time`).

use std::time::{SystemTime, UNIX_EPOCH};

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
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    let n = d.subsec_nanos();
    if nanos && n != 0 {
        let frac = format!("{n:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    } else {
        format!("{base}Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
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
