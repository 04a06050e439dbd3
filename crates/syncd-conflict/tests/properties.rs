//! Property tests: ordering laws, order-independence of the global version, and agreement
//! between devices holding the same announcements.

use std::cmp::Ordering;

use proptest::prelude::*;
use syncd_conflict::*;
use syncd_types::FileKind;

/// Vectors over a few IDs with small counters, so equal and concurrent pairs are common.
fn vector() -> impl Strategy<Value = VersionVector> {
    prop::collection::vec((1u64..5, 0u64..4), 0..5).prop_map(|c| {
        VersionVector::from_counters(c.into_iter().map(|(id, value)| Counter {
            id: ShortId(id),
            value,
        }))
    })
}

#[derive(Clone, Debug)]
struct Rec {
    device: u8,
    version: VersionVector,
    invalid: bool,
    deleted: bool,
    kind: FileKind,
    mtime: (i64, i32),
    blocks: Vec<u8>,
    previous: Vec<u8>,
}

impl Rec {
    fn cand(&self) -> Candidate<'_> {
        Candidate {
            device: DeviceId::from_bytes([self.device; 32]),
            version: &self.version,
            invalid: self.invalid,
            deleted: self.deleted,
            kind: self.kind,
            modified_s: self.mtime.0,
            modified_ns: self.mtime.1,
            modified_by: ShortId(u64::from(self.device)),
            blocks_hash: &self.blocks,
            previous_blocks_hash: &self.previous,
        }
    }
}

fn kind() -> impl Strategy<Value = FileKind> {
    prop_oneof![
        6 => Just(FileKind::File),
        1 => Just(FileKind::Directory),
        1 => Just(FileKind::Symlink),
    ]
}

fn rec(device: u8) -> impl Strategy<Value = Rec> {
    (
        vector(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.3),
        kind(),
        (0i64..4, 0i32..2),
        prop::sample::select(vec![&b""[..], b"a", b"b", b"c"]),
        prop::sample::select(vec![&b""[..], b"a", b"b"]),
    )
        .prop_map(
            move |(version, invalid, deleted, kind, mtime, blocks, previous)| Rec {
                device,
                version,
                invalid,
                deleted,
                kind,
                mtime,
                blocks: if deleted { Vec::new() } else { blocks.to_vec() },
                previous: previous.to_vec(),
            },
        )
}

/// 1–6 records from distinct devices.
fn recs() -> impl Strategy<Value = Vec<Rec>> {
    (1usize..=6).prop_flat_map(|n| (1..=n).map(|d| rec(d as u8)).collect::<Vec<_>>())
}

fn rule() -> impl Strategy<Value = DeleteRule> {
    prop_oneof![Just(DeleteRule::V1), Just(DeleteRule::V2)]
}

const TIME: LocalTime = LocalTime {
    year: 2026,
    month: 1,
    day: 2,
    hour: 15,
    minute: 4,
    second: 5,
};

/// Inverse of the civil-date algorithm, written independently (count days year by year from
/// 1970 for the years, then month lengths).
fn unix_from_civil(t: &LocalTime) -> i64 {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days: i64 = 0;
    if t.year >= 1970 {
        for y in 1970..t.year {
            days += if leap(y) { 366 } else { 365 };
        }
    } else {
        for y in t.year..1970 {
            days -= if leap(y) { 366 } else { 365 };
        }
    }
    let months = [
        31,
        if leap(t.year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days += months.iter().take(usize::from(t.month) - 1).sum::<i64>();
    days += i64::from(t.day) - 1;
    days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn vector_compare_is_antisymmetric(a in vector(), b in vector()) {
        prop_assert_eq!(a.compare(&b), b.compare(&a).reverse());
    }

    #[test]
    fn vector_equal_iff_same_counters(a in vector(), b in vector()) {
        prop_assert_eq!(a.compare(&b) == VersionOrdering::Equal, a == b);
    }

    #[test]
    fn concurrent_sign_is_the_lexicographic_order(a in vector(), b in vector()) {
        match a.compare(&b) {
            VersionOrdering::ConcurrentGreater => prop_assert_eq!(a.cmp_lexicographic(&b), Ordering::Greater),
            VersionOrdering::ConcurrentLesser => prop_assert_eq!(a.cmp_lexicographic(&b), Ordering::Less),
            _ => {}
        }
    }

    #[test]
    fn update_supersedes_and_merge_contains_both(a in vector(), b in vector(), id in 1u64..6, now in 0u64..10) {
        prop_assert_eq!(a.updated(ShortId(id), now).compare(&a), VersionOrdering::Greater);
        let m = a.merged(&b);
        prop_assert!(m.compare(&a).is_greater_or_equal());
        prop_assert!(m.compare(&b).is_greater_or_equal());
        prop_assert_eq!(&m, &b.merged(&a));
    }

    #[test]
    fn candidate_comparison_is_antisymmetric(a in rec(1), b in rec(2), rule in rule()) {
        prop_assert_eq!(
            compare_candidates(&a.cand(), &b.cand(), rule),
            compare_candidates(&b.cand(), &a.cand(), rule).reverse()
        );
    }

    #[test]
    fn global_does_not_depend_on_candidate_order(
        (recs, shuffled) in recs().prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle())),
        rule in rule(),
    ) {
        let a: Vec<_> = recs.iter().map(Rec::cand).collect();
        let b: Vec<_> = shuffled.iter().map(Rec::cand).collect();
        let ga = select_global(&a, rule).map(|i| recs[i].device);
        let gb = select_global(&b, rule).map(|i| shuffled[i].device);
        prop_assert_eq!(ga, gb);
    }

    #[test]
    fn global_is_valid_if_any_candidate_is_and_never_superseded(recs in recs(), rule in rule()) {
        let c: Vec<_> = recs.iter().map(Rec::cand).collect();
        let Some(g) = select_global(&c, rule) else {
            return Err(TestCaseError::fail("non-empty set has a global"));
        };
        let any_valid = recs.iter().any(|r| !r.invalid);
        prop_assert_eq!(!recs[g].invalid, any_valid);
        for r in recs.iter().filter(|r| !r.invalid || !any_valid) {
            prop_assert_ne!(r.version.compare(&recs[g].version), VersionOrdering::Greater);
        }
    }

    #[test]
    fn devices_holding_the_same_announcements_agree(recs in recs(), rule in rule()) {
        // Each record is one device's local row; every device sees all of them.
        let c: Vec<_> = recs.iter().map(Rec::cand).collect();
        let Some(g) = select_global(&c, rule) else {
            return Err(TestCaseError::fail("non-empty set has a global"));
        };
        let global = &recs[g];
        let mut names = Vec::new();
        for (i, local) in recs.iter().enumerate() {
            // Every device computes the same global whatever it lists first.
            let mut view = c.clone();
            view.swap(0, i);
            let gv = select_global(&view, rule).map(|j| view[j].device);
            prop_assert_eq!(gv, Some(global.cand().device));

            let here = LocalContext {
                path: "d/f.txt",
                device: ShortId(u64::from(local.device)),
                now_unix_secs: 99,
                max_conflicts: MaxConflicts::default(),
            };
            let got = resolve(Some(&local.cand()), &global.cand(), &here);
            if i == g {
                prop_assert_eq!(&got, &Resolution::KeepLocal);
            }
            let needed = needs(Some(&local.cand()), &global.cand());
            match got {
                Resolution::KeepLocal => prop_assert!(!needed, "keeping the local record implies not needing the global"),
                Resolution::TakeRemote { fate, adopt_version } => {
                    prop_assert!(needed, "taking the global implies needing it");
                    if local.version.compare(&global.version).is_concurrent() {
                        let merged = global.version.merged(&local.version);
                        prop_assert!(adopt_version.compare(&merged).is_greater_or_equal());
                        prop_assert_eq!(adopt_version.compare(&global.version), VersionOrdering::Greater);
                        if matches!(fate, LocalFate::ConflictCopy { .. }) {
                            // Different content: a fresh version of this device.
                            prop_assert_eq!(&adopt_version, &merged.updated(here.device, 99));
                        }
                    } else {
                        prop_assert_eq!(&adopt_version, &global.version);
                    }
                    prop_assert!(adopt_version.compare(&global.version).is_greater_or_equal());
                    prop_assert!(adopt_version.compare(&local.version).is_greater_or_equal());
                    if let LocalFate::ConflictCopy { winner_modified_by } = fate {
                        prop_assert_eq!(winner_modified_by, ShortId(u64::from(global.device)));
                        names.extend(conflict_copy_name("d/f.txt", winner_modified_by, TIME));
                    }
                }
                _ => {}
            }
        }
        names.dedup();
        prop_assert!(names.len() <= 1, "losers disagree on the copy name: {:?}", names);
    }

    #[test]
    fn conflict_names_are_recognised_and_never_nested(
        dir in prop::option::of("[a-z.]{1,6}"),
        name in "[a-zA-Z0-9._ -]{1,12}",
        id in any::<u64>(),
        secs in -10_000_000_000i64..10_000_000_000,
    ) {
        prop_assume!(!name.contains(CONFLICT_MARKER));
        let path = match dir { Some(d) => format!("{d}/{name}"), None => name };
        let t = LocalTime::from_unix(secs, 0);
        prop_assume!((0..=9999).contains(&t.year));
        let Some(copy) = conflict_copy_name(&path, ShortId(id), t) else {
            return Err(TestCaseError::fail("a plain name gets a copy name"));
        };
        prop_assert!(is_conflict_copy(&copy));
        prop_assert!(is_conflict_copy_of(&path, &copy), "{} / {}", path, copy);
        prop_assert_eq!(conflict_copy_name(&copy, ShortId(id), t), None);
        // Only the file name changes.
        let parent = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_owned());
        prop_assert_eq!(parent(&path), parent(&copy));
    }

    #[test]
    fn civil_time_round_trips(secs in -100_000_000_000i64..100_000_000_000, off in -50_400i32..50_400) {
        let t = LocalTime::from_unix(secs, off);
        prop_assert!((1..=12).contains(&t.month) && (1..=31).contains(&t.day));
        prop_assert!(t.hour < 24 && t.minute < 60 && t.second < 60);
        prop_assert_eq!(unix_from_civil(&t), secs + i64::from(off));
        prop_assert_eq!(t.to_unix_as_utc(), secs + i64::from(off));
    }

    #[test]
    fn a_tag_reads_back_as_written(secs in 0i64..253_402_300_799) {
        let t = LocalTime::from_unix(secs, 0);
        prop_assert_eq!(LocalTime::parse_tag(&t.to_string()), Some(t));
    }

    #[test]
    fn pruning_keeps_exactly_the_newest(days in prop::collection::btree_set(1u32..28, 0..15), keep in 0u32..12) {
        let names: Vec<String> = days.iter().map(|d| format!("f.sync-conflict-202601{d:02}-000000-AAAAAAA")).collect();
        let removed = conflicts_to_remove("f", names.iter().map(String::as_str), MaxConflicts::Keep(keep));
        let expect = names.len().saturating_sub(keep as usize);
        prop_assert_eq!(removed.len(), expect);
        // Everything removed is older than everything kept.
        let kept: Vec<&str> = names.iter().map(String::as_str).filter(|n| !removed.contains(n)).collect();
        for r in &removed {
            for k in &kept {
                prop_assert!(r < k);
            }
        }
    }
}
