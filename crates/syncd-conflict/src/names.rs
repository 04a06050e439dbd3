//! Conflict-copy names and `maxConflicts` pruning (spec sync-semantics §2.3–§2.4).

use std::fmt;

use syncd_types::ShortId;

/// The marker every conflict copy's file name contains.
pub const CONFLICT_MARKER: &str = ".sync-conflict-";

/// A civil (calendar) date and wall-clock time, already in the local time zone.
///
/// Built directly, or from unix seconds and the zone's UTC offset with
/// [`LocalTime::from_unix`] (this crate reads no clock and no zone database).
///
/// ```
/// use syncd_conflict::LocalTime;
/// let t = LocalTime::from_unix(1_767_366_245, 0); // 2026-01-02 15:04:05 UTC
/// assert_eq!(t, LocalTime { year: 2026, month: 1, day: 2, hour: 15, minute: 4, second: 5 });
/// assert_eq!(t.to_string(), "20260102-150405");
/// // The same instant in UTC+02:00.
/// assert_eq!(LocalTime::from_unix(1_767_366_245, 7200).hour, 17);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalTime {
    /// Proleptic Gregorian year.
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59 (60 is printed as given).
    pub second: u8,
}

impl LocalTime {
    /// The wall-clock time `unix_secs + utc_offset_secs` seconds after 1970-01-01 00:00:00,
    /// in the proleptic Gregorian calendar. Total for every input (no overflow, no panic).
    pub fn from_unix(unix_secs: i64, utc_offset_secs: i32) -> Self {
        let t = i128::from(unix_secs) + i128::from(utc_offset_secs);
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // secs < 86_400, so each component fits a u8.
        let hour = u8::try_from(secs / 3600).unwrap_or(0);
        let minute = u8::try_from(secs % 3600 / 60).unwrap_or(0);
        let second = u8::try_from(secs % 60).unwrap_or(0);
        LocalTime {
            year: i64::try_from(year).unwrap_or(if year < 0 { i64::MIN } else { i64::MAX }),
            month,
            day,
            hour,
            minute,
            second,
        }
    }
}

impl LocalTime {
    /// The inverse of [`LocalTime::from_unix`] with offset 0: the seconds since 1970-01-01
    /// 00:00:00 of this wall-clock time read as UTC. Total for every field value (an
    /// out-of-range month or day is counted on, as from the month's first day).
    ///
    /// ```
    /// use syncd_conflict::LocalTime;
    /// let t = LocalTime { year: 2026, month: 1, day: 2, hour: 15, minute: 4, second: 5 };
    /// assert_eq!(t.to_unix_as_utc(), 1_767_366_245);
    /// assert_eq!(LocalTime::from_unix(t.to_unix_as_utc(), 0), t);
    /// ```
    pub fn to_unix_as_utc(&self) -> i64 {
        let month = i128::from(self.month.clamp(1, 12));
        let year = i128::from(self.year) - i128::from(month <= 2);
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400); // year of era, 0..=399
        let mp = (month + 9) % 12; // March-based month, 0..=11
        let doy = (153 * mp + 2) / 5 + i128::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400
            + i128::from(self.hour) * 3600
            + i128::from(self.minute) * 60
            + i128::from(self.second);
        i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX })
    }

    /// Reads the `YYYYMMDD-HHMMSS` form [`Display`](fmt::Display) writes; `None` for
    /// anything else (including a month, day or time out of range).
    ///
    /// ```
    /// use syncd_conflict::LocalTime;
    /// let t = LocalTime::parse_tag("20260102-150405").unwrap();
    /// assert_eq!(t.to_string(), "20260102-150405");
    /// assert_eq!(LocalTime::parse_tag("20261302-150405"), None);
    /// ```
    pub fn parse_tag(tag: &str) -> Option<LocalTime> {
        let b = tag.as_bytes();
        if b.len() != 15 || b.get(8) != Some(&b'-') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u16> {
            let s = tag.get(r)?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let t = LocalTime {
            year: i64::from(num(0..4)?),
            month: u8::try_from(num(4..6)?).ok()?,
            day: u8::try_from(num(6..8)?).ok()?,
            hour: u8::try_from(num(9..11)?).ok()?,
            minute: u8::try_from(num(11..13)?).ok()?,
            second: u8::try_from(num(13..15)?).ok()?,
        };
        let valid = (1..=12).contains(&t.month)
            && (1..=31).contains(&t.day)
            && t.hour <= 23
            && t.minute <= 59
            && t.second <= 60;
        valid.then_some(t)
    }
}

/// Days since 1970-01-01 → (year, month, day), counting in 400-year eras of 146 097 days
/// with years starting on March 1st so the leap day is the last day of a year.
fn civil_from_days(days: i128) -> (i128, u8, u8) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year, 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

impl fmt::Display for LocalTime {
    /// Go layout `20060102-150405`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The file name (last `/`-separated element) of `path`.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Go's `filepath.Ext`: from the last `.` of the file name (inclusive), or empty.
fn extension(path: &str) -> &str {
    let name = file_name(path);
    name.rfind('.').map_or("", |i| name.get(i..).unwrap_or(""))
}

/// True when the file name of `path` contains `.sync-conflict-`: it is a conflict copy (and
/// is never copied again; see [`crate::resolve`]).
///
/// ```
/// use syncd_conflict::is_conflict_copy;
/// assert!(is_conflict_copy("a/report.sync-conflict-20260102-150405-ABCDEFG.txt"));
/// assert!(!is_conflict_copy("x.sync-conflict-20260102-150405-ABCDEFG/report.txt"));
/// ```
pub fn is_conflict_copy(path: &str) -> bool {
    file_name(path).contains(CONFLICT_MARKER)
}

/// What a conflict copy's name says: the path it is a copy of, the local time stamp
/// `YYYYMMDD-HHMMSS` of the resolution and the short ID printed in the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCopyName {
    /// The path of the file the copy belongs to (same form as the copy's path).
    pub original: String,
    /// `YYYYMMDD-HHMMSS`, the local wall-clock time the conflict was resolved.
    pub stamp: String,
    /// The 7-character short device ID in the name (empty for the zero ID).
    pub short_id: String,
}

/// Reads a name made by [`conflict_copy_name`]; `None` for any other name. The inverse:
/// `parse_conflict_copy(conflict_copy_name(p, ..))` gives back `p`.
///
/// ```
/// use syncd_conflict::parse_conflict_copy;
/// let c = parse_conflict_copy("docs/report.sync-conflict-20260102-150405-P56IOI7.txt").unwrap();
/// assert_eq!((c.original.as_str(), c.stamp.as_str(), c.short_id.as_str()),
///            ("docs/report.txt", "20260102-150405", "P56IOI7"));
/// assert_eq!(parse_conflict_copy(".sync-conflict-20260102-150405-P56IOI7.bashrc").unwrap().original, ".bashrc");
/// assert_eq!(parse_conflict_copy("dir.d/file.sync-conflict-20260102-150405-P56IOI7").unwrap().original, "dir.d/file");
/// assert!(parse_conflict_copy("report.txt").is_none());
/// assert!(parse_conflict_copy("a.sync-conflict-2026-01.txt").is_none());
/// ```
pub fn parse_conflict_copy(path: &str) -> Option<ConflictCopyName> {
    let name = file_name(path);
    let dir = path.get(..path.len() - name.len()).unwrap_or("");
    let at = name.find(CONFLICT_MARKER)?;
    let stem = name.get(..at)?;
    let rest = name.get(at + CONFLICT_MARKER.len()..)?;
    let stamp = rest.get(..15)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(stamp.get(..8)?) && stamp.get(8..9)? == "-" && digits(stamp.get(9..)?)) {
        return None;
    }
    let after = rest.get(15..)?.strip_prefix('-')?;
    let (short_id, ext) = match after.find('.') {
        Some(i) => (after.get(..i)?, after.get(i..)?),
        None => (after, ""),
    };
    if short_id.len() > 7 || !short_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(ConflictCopyName {
        original: format!("{dir}{stem}{ext}"),
        stamp: stamp.to_owned(),
        short_id: short_id.to_owned(),
    })
}

/// The 7-character short ID as printed in conflict names; the zero ID prints as empty.
fn short_id_text(id: ShortId) -> String {
    if id.0 == 0 {
        String::new()
    } else {
        id.to_string()
    }
}

/// The conflict-copy name for `path` (relative, `/`-separated):
/// `<path without ext>.sync-conflict-YYYYMMDD-HHMMSS-<winner's 7-char short ID><ext>`, where
/// `ext` starts at the last `.` of the file name (a dotfile's whole name is its extension) and
/// the time is the local wall-clock time of the resolution. `None` when `path` already is a
/// conflict copy.
///
/// ```
/// use syncd_conflict::{conflict_copy_name, LocalTime, ShortId};
/// let t = LocalTime { year: 2026, month: 1, day: 2, hour: 15, minute: 4, second: 5 };
/// let id = ShortId(0x7f7c8723ecca5b4d); // P56IOI7…
/// assert_eq!(conflict_copy_name("docs/report.txt", id, t).as_deref(),
///            Some("docs/report.sync-conflict-20260102-150405-P56IOI7.txt"));
/// assert_eq!(conflict_copy_name(".bashrc", id, t).as_deref(),
///            Some(".sync-conflict-20260102-150405-P56IOI7.bashrc"));
/// assert_eq!(conflict_copy_name("dir.d/file", id, t).as_deref(),
///            Some("dir.d/file.sync-conflict-20260102-150405-P56IOI7"));
/// assert_eq!(conflict_copy_name("a.sync-conflict-20250101-000000-P56IOI7.txt", id, t), None);
/// ```
pub fn conflict_copy_name(
    path: &str,
    winner_modified_by: ShortId,
    local_time: LocalTime,
) -> Option<String> {
    if is_conflict_copy(path) {
        return None;
    }
    let ext = extension(path);
    let stem = path.get(..path.len() - ext.len()).unwrap_or(path);
    Some(format!(
        "{stem}{CONFLICT_MARKER}{local_time}-{}{ext}",
        short_id_text(winner_modified_by)
    ))
}

/// The folder option `maxConflicts`: how many conflict copies of one file to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxConflicts {
    /// Keep every copy (config value `-1`, or any negative value).
    Unlimited,
    /// Keep at most this many; `Keep(0)` makes no copies at all (the losing file is deleted).
    Keep(u32),
}

impl Default for MaxConflicts {
    /// Syncthing's default, 10.
    fn default() -> Self {
        MaxConflicts::Keep(10)
    }
}

impl MaxConflicts {
    /// From the config value: negative = unlimited; values above `u32::MAX` are clamped.
    ///
    /// ```
    /// use syncd_conflict::MaxConflicts;
    /// assert_eq!(MaxConflicts::from_config(-1), MaxConflicts::Unlimited);
    /// assert_eq!(MaxConflicts::from_config(0), MaxConflicts::Keep(0));
    /// assert_eq!(MaxConflicts::from_config(10), MaxConflicts::default());
    /// ```
    pub fn from_config(value: i64) -> Self {
        if value < 0 {
            MaxConflicts::Unlimited
        } else {
            MaxConflicts::Keep(u32::try_from(value).unwrap_or(u32::MAX))
        }
    }

    /// The config value (`-1` for unlimited).
    pub fn to_config(self) -> i64 {
        match self {
            MaxConflicts::Unlimited => -1,
            MaxConflicts::Keep(n) => i64::from(n),
        }
    }
}

/// True when `candidate` is a conflict copy of `path` in the sense of Syncthing's sibling glob
/// `<stem>.sync-conflict-????????-??????*<ext>` (each `?`/`*` matching within one path
/// element). Both are paths in the same form (relative, `/`-separated).
///
/// ```
/// use syncd_conflict::is_conflict_copy_of;
/// assert!(is_conflict_copy_of("d/a.txt", "d/a.sync-conflict-20260102-150405-ABCDEFG.txt"));
/// assert!(!is_conflict_copy_of("d/a.txt", "d/b.sync-conflict-20260102-150405-ABCDEFG.txt"));
/// assert!(!is_conflict_copy_of("d/a.txt", "d/a.sync-conflict-2026-01.txt"));
/// ```
pub fn is_conflict_copy_of(path: &str, candidate: &str) -> bool {
    let ext = extension(path);
    let stem = path.get(..path.len() - ext.len()).unwrap_or(path);
    let Some(rest) = candidate
        .strip_prefix(stem)
        .and_then(|r| r.strip_prefix(CONFLICT_MARKER))
        .and_then(|r| r.strip_suffix(ext))
    else {
        return false;
    };
    // `rest` must match `????????-??????*`: 8 chars, '-', 6 chars, anything; no separator.
    let chars: Vec<char> = rest.chars().collect();
    chars.len() >= 15 && chars.get(8) == Some(&'-') && !chars.contains(&'/')
}

/// Which existing conflict copies of `path` to delete so that at most `max` remain, as done
/// right after making a new copy: the copies among `existing` (names of the path's siblings,
/// in the same form as `path`; other names are ignored) are sorted by name, newest timestamp
/// first, and all after the first `max` are returned. [`MaxConflicts::Unlimited`] removes
/// nothing.
///
/// ```
/// use syncd_conflict::{conflicts_to_remove, MaxConflicts};
/// let existing = [
///     "a.sync-conflict-20260101-000000-AAAAAAA.txt",
///     "a.txt",
///     "a.sync-conflict-20260103-000000-AAAAAAA.txt",
///     "a.sync-conflict-20260102-000000-AAAAAAA.txt",
/// ];
/// assert_eq!(conflicts_to_remove("a.txt", existing, MaxConflicts::Keep(2)),
///            vec!["a.sync-conflict-20260101-000000-AAAAAAA.txt"]);
/// assert!(conflicts_to_remove("a.txt", existing, MaxConflicts::Unlimited).is_empty());
/// ```
pub fn conflicts_to_remove<S: AsRef<str>>(
    path: &str,
    existing: impl IntoIterator<Item = S>,
    max: MaxConflicts,
) -> Vec<S> {
    let MaxConflicts::Keep(keep) = max else {
        return Vec::new();
    };
    let mut copies: Vec<S> = existing
        .into_iter()
        .filter(|name| is_conflict_copy_of(path, name.as_ref()))
        .collect();
    copies.sort_by(|a, b| b.as_ref().cmp(a.as_ref()));
    let keep = usize::try_from(keep)
        .unwrap_or(usize::MAX)
        .min(copies.len());
    copies.split_off(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: LocalTime = LocalTime {
        year: 2026,
        month: 1,
        day: 2,
        hour: 15,
        minute: 4,
        second: 5,
    };

    #[test]
    fn parse_conflict_copy_inverts_conflict_copy_name() {
        for path in [
            "a.txt",
            "dir/a.tar.gz",
            ".bashrc",
            "dir.d/file",
            "sp ace/<img src=x>.md",
        ] {
            for id in [abcdefg(), ShortId(0)] {
                let copy = conflict_copy_name(path, id, T).unwrap();
                let parsed = parse_conflict_copy(&copy).unwrap();
                assert_eq!(parsed.original, path, "{copy}");
                assert_eq!(parsed.stamp, "20260102-150405");
                assert_eq!(parsed.short_id, short_id_text(id));
            }
        }
        for not_a_copy in [
            "a.sync-conflict-.txt",
            "a.sync-conflict-2026010x-150405-ABCDEFG.txt",
            "a.sync-conflict-20260102-150405-TOOLONGID.txt",
            "x.sync-conflict-20260102-150405-ABCDEFG/inner.txt",
        ] {
            assert!(parse_conflict_copy(not_a_copy).is_none(), "{not_a_copy}");
        }
    }

    /// `ABCDEFG` as a short ID: base32 A=0, B=1, … so the top 35 bits are 0,1,2,3,4,5,6.
    fn abcdefg() -> ShortId {
        let mut v = 0u64;
        for c in 0..7u64 {
            v = (v << 5) | c;
        }
        ShortId(v << (64 - 35))
    }

    #[test]
    fn spec_name_examples() {
        assert_eq!(abcdefg().to_string(), "ABCDEFG");
        let table = [
            (
                "docs/report.txt",
                "docs/report.sync-conflict-20260102-150405-ABCDEFG.txt",
            ),
            ("Makefile", "Makefile.sync-conflict-20260102-150405-ABCDEFG"),
            ("a.tar.gz", "a.tar.sync-conflict-20260102-150405-ABCDEFG.gz"),
            (".bashrc", ".sync-conflict-20260102-150405-ABCDEFG.bashrc"),
            ("dir/.env", "dir/.sync-conflict-20260102-150405-ABCDEFG.env"),
            (
                "dir.d/file",
                "dir.d/file.sync-conflict-20260102-150405-ABCDEFG",
            ),
            (
                "trailing.",
                "trailing.sync-conflict-20260102-150405-ABCDEFG.",
            ),
            (
                "ünï/cödé.tëxt",
                "ünï/cödé.sync-conflict-20260102-150405-ABCDEFG.tëxt",
            ),
        ];
        for (path, want) in table {
            assert_eq!(
                conflict_copy_name(path, abcdefg(), T).as_deref(),
                Some(want),
                "{path}"
            );
        }
    }

    #[test]
    fn zero_short_id_prints_empty() {
        assert_eq!(
            conflict_copy_name("a.txt", ShortId(0), T).as_deref(),
            Some("a.sync-conflict-20260102-150405-.txt")
        );
    }

    #[test]
    fn existing_conflict_copies_are_never_renamed_again() {
        for path in [
            "a.sync-conflict-20260102-150405-ABCDEFG.txt",
            "d/.sync-conflict-20260102-150405-ABCDEFG.bashrc",
            "d/x.sync-conflict-",
        ] {
            assert!(is_conflict_copy(path), "{path}");
            assert_eq!(conflict_copy_name(path, abcdefg(), T), None, "{path}");
        }
        // Only the file name counts, not a parent directory.
        assert!(!is_conflict_copy("d.sync-conflict-x/a.txt"));
        assert!(conflict_copy_name("d.sync-conflict-x/a.txt", abcdefg(), T).is_some());
    }

    #[test]
    fn civil_time_from_unix() {
        let table = [
            (0, 0, "19700101-000000"),
            (-1, 0, "19691231-235959"),
            (951_782_400, 0, "20000229-000000"),
            (1_767_366_245, 0, "20260102-150405"),
            (1_767_366_245, -16 * 3600, "20260101-230405"),
            (1_767_366_245, 5 * 3600 + 1800, "20260102-203405"),
            (4_107_542_400, 0, "21000301-000000"),
            (253_402_300_799, 0, "99991231-235959"),
        ];
        for (secs, off, want) in table {
            assert_eq!(
                LocalTime::from_unix(secs, off).to_string(),
                want,
                "{secs}+{off}"
            );
        }
        // Extremes do not panic.
        let _ = LocalTime::from_unix(i64::MIN, i32::MIN);
        let _ = LocalTime::from_unix(i64::MAX, i32::MAX);
    }

    #[test]
    fn conflict_copy_of_matches_the_sibling_glob() {
        let table = [
            ("a.txt", "a.sync-conflict-20260102-150405-ABCDEFG.txt", true),
            ("a.txt", "a.sync-conflict-20260102-150405.txt", true),
            ("a.txt", "a.sync-conflict-20260102-15040.txt", false),
            (
                "a.txt",
                "a.sync-conflict-20260102x150405-ABCDEFG.txt",
                false,
            ),
            ("a.txt", "a.sync-conflict-20260102-150405-ABCDEFG.md", false),
            (
                "a.txt",
                "ab.sync-conflict-20260102-150405-ABCDEFG.txt",
                false,
            ),
            ("a.txt", "a.txt", false),
            (
                "Makefile",
                "Makefile.sync-conflict-20260102-150405-ABCDEFG",
                true,
            ),
            (
                ".bashrc",
                ".sync-conflict-20260102-150405-ABCDEFG.bashrc",
                true,
            ),
            (
                "d/a.txt",
                "d/a.sync-conflict-20260102-150405-ABCDEFG.txt",
                true,
            ),
            (
                "d/a.txt",
                "a.sync-conflict-20260102-150405-ABCDEFG.txt",
                false,
            ),
            ("a", "a.sync-conflict-20260102-150405-X/b", false),
        ];
        for (path, name, want) in table {
            assert_eq!(is_conflict_copy_of(path, name), want, "{path} / {name}");
        }
    }

    #[test]
    fn pruning_keeps_the_newest_max() {
        let names: Vec<String> = (1..=12)
            .map(|d| format!("a.sync-conflict-202601{d:02}-000000-ABCDEFG.txt"))
            .collect();
        let removed = conflicts_to_remove(
            "a.txt",
            names.iter().map(String::as_str),
            MaxConflicts::default(),
        );
        assert_eq!(
            removed,
            [
                "a.sync-conflict-20260102-000000-ABCDEFG.txt",
                "a.sync-conflict-20260101-000000-ABCDEFG.txt"
            ]
        );
        let all = conflicts_to_remove(
            "a.txt",
            names.iter().map(String::as_str),
            MaxConflicts::Keep(0),
        );
        assert_eq!(all.len(), 12);
        let none = conflicts_to_remove(
            "a.txt",
            names.iter().map(String::as_str),
            MaxConflicts::Unlimited,
        );
        assert!(none.is_empty());
        let under = conflicts_to_remove(
            "a.txt",
            names.iter().take(3).map(String::as_str),
            MaxConflicts::Keep(10),
        );
        assert!(under.is_empty());
    }

    #[test]
    fn pruning_ignores_unrelated_names() {
        let names = [
            "a.txt",
            "b.sync-conflict-20260101-000000-ABCDEFG.txt",
            "a.sync-conflict-20260101-000000-ABCDEFG.txt",
        ];
        let removed = conflicts_to_remove("a.txt", names, MaxConflicts::Keep(0));
        assert_eq!(removed, ["a.sync-conflict-20260101-000000-ABCDEFG.txt"]);
    }

    #[test]
    fn max_conflicts_config_values() {
        for (value, want) in [
            (-1, MaxConflicts::Unlimited),
            (-5, MaxConflicts::Unlimited),
            (0, MaxConflicts::Keep(0)),
            (10, MaxConflicts::Keep(10)),
            (i64::MAX, MaxConflicts::Keep(u32::MAX)),
        ] {
            assert_eq!(MaxConflicts::from_config(value), want, "{value}");
        }
        assert_eq!(MaxConflicts::Unlimited.to_config(), -1);
        assert_eq!(MaxConflicts::default().to_config(), 10);
    }
}
