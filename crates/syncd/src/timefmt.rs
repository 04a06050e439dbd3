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

/// Parses an RFC 3339 timestamp (`2026-01-02T16:04:05+01:00`, `…Z`, with or without a
/// fraction, which is dropped); `None` when it is not one.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() || b[4] != b'-' || b[7] != b'-' || b[13] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = rest.get(1..)?;
            if o.len() != 5 || o.as_bytes()[2] != b':' {
                return None;
            }
            let (oh, om) = (
                o.get(0..2)?.parse::<i64>().ok()?,
                o.get(3..5)?.parse::<i64>().ok()?,
            );
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    let unix = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(unix).ok()?;
    UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
