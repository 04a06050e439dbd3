//! Version vectors (spec sync-semantics §1.2, bep-wire §7.7).

use std::cmp::Ordering;

use syncd_types::ShortId;

/// One device's counter in a [`VersionVector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Counter {
    /// The device that made the change(s) counted here.
    pub id: ShortId,
    /// The counter value (since Syncthing 1.6 roughly a unix timestamp in seconds).
    pub value: u64,
}

/// A version vector: one counter per device that changed the file, sorted by short ID.
///
/// Invariants: counters are sorted by ascending [`ShortId`], there is at most one counter per ID
/// and no counter is zero (a missing counter means 0). Because of that, derived equality is the
/// same as [`VersionVector::compare`] returning [`VersionOrdering::Equal`].
///
/// ```
/// use syncd_conflict::{Counter, ShortId, VersionOrdering, VersionVector};
///
/// let base = VersionVector::new().updated(ShortId(42), 100);
/// let ours = base.updated(ShortId(42), 200);
/// let theirs = base.updated(ShortId(43), 150);
/// assert_eq!(ours.compare(&base), VersionOrdering::Greater);
/// assert_eq!(ours.compare(&theirs), VersionOrdering::ConcurrentGreater);
/// assert_eq!(theirs.compare(&ours), VersionOrdering::ConcurrentLesser);
/// assert_eq!(ours.merged(&theirs).counters(), &[
///     Counter { id: ShortId(42), value: 200 },
///     Counter { id: ShortId(43), value: 150 },
/// ]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct VersionVector {
    counters: Vec<Counter>,
}

/// The result of comparing two version vectors, from the point of view of the left-hand one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOrdering {
    /// Every counter is equal (missing counts as 0).
    Equal,
    /// Left is ≥ right everywhere and > somewhere: left supersedes right.
    Greater,
    /// Right supersedes left.
    Lesser,
    /// Neither supersedes the other; at the lowest short ID where they differ, left is larger.
    ConcurrentGreater,
    /// Neither supersedes the other; at the lowest short ID where they differ, right is larger.
    ConcurrentLesser,
}

impl VersionOrdering {
    /// The ordering seen from the other side (`a.compare(b).reverse() == b.compare(a)`).
    pub fn reverse(self) -> Self {
        match self {
            VersionOrdering::Equal => VersionOrdering::Equal,
            VersionOrdering::Greater => VersionOrdering::Lesser,
            VersionOrdering::Lesser => VersionOrdering::Greater,
            VersionOrdering::ConcurrentGreater => VersionOrdering::ConcurrentLesser,
            VersionOrdering::ConcurrentLesser => VersionOrdering::ConcurrentGreater,
        }
    }

    /// True for both concurrent outcomes (a real conflict).
    pub fn is_concurrent(self) -> bool {
        matches!(
            self,
            VersionOrdering::ConcurrentGreater | VersionOrdering::ConcurrentLesser
        )
    }

    /// True for [`VersionOrdering::Greater`] and [`VersionOrdering::Equal`]: the left side
    /// contains everything the right side has seen.
    pub fn is_greater_or_equal(self) -> bool {
        matches!(self, VersionOrdering::Greater | VersionOrdering::Equal)
    }
}

impl VersionVector {
    /// The empty vector (never changed by anyone; equal to any all-zero vector).
    pub fn new() -> Self {
        VersionVector::default()
    }

    /// Builds a vector from counters in any order: sorts them by ID, keeps the largest value
    /// when an ID repeats and drops zero counters (missing and zero mean the same).
    pub fn from_counters(counters: impl IntoIterator<Item = Counter>) -> Self {
        let mut counters: Vec<Counter> = counters.into_iter().filter(|c| c.value != 0).collect();
        // Sorting by (id, value) puts the largest value of each ID last in its run.
        counters.sort_unstable();
        let mut out: Vec<Counter> = Vec::with_capacity(counters.len());
        for c in counters {
            match out.last_mut() {
                Some(last) if last.id == c.id => last.value = c.value,
                _ => out.push(c),
            }
        }
        VersionVector { counters: out }
    }

    /// The counters, sorted by ascending short ID, none zero.
    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    /// The counter of `id`; 0 when the device never changed the file.
    pub fn get(&self, id: ShortId) -> u64 {
        match self.counters.binary_search_by(|c| c.id.cmp(&id)) {
            Ok(i) => self.counters.get(i).map_or(0, |c| c.value),
            Err(_) => 0,
        }
    }

    /// True when no device has a counter (the vector of a never-changed or receive-only entry).
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// The vector after a local change made by `by` at `now_unix_secs`: `by`'s counter becomes
    /// `max(old + 1, now)` (a new counter `max(1, now)`), so a device whose database was wiped
    /// still produces a version newer than its old ones.
    ///
    /// ```
    /// use syncd_conflict::{ShortId, VersionVector};
    /// let v = VersionVector::new().updated(ShortId(7), 1_000);
    /// assert_eq!(v.get(ShortId(7)), 1_000);
    /// // A clock that went backwards still moves the counter forward.
    /// assert_eq!(v.updated(ShortId(7), 10).get(ShortId(7)), 1_001);
    /// ```
    pub fn updated(&self, by: ShortId, now_unix_secs: u64) -> Self {
        let mut counters = self.counters.clone();
        match counters.binary_search_by(|c| c.id.cmp(&by)) {
            Ok(i) => {
                if let Some(c) = counters.get_mut(i) {
                    c.value = c.value.saturating_add(1).max(now_unix_secs);
                }
            }
            Err(i) => counters.insert(
                i,
                Counter {
                    id: by,
                    value: now_unix_secs.max(1),
                },
            ),
        }
        VersionVector { counters }
    }

    /// The element-wise maximum of both vectors (used by send-only "override"; ordinary
    /// conflict resolution does not merge, see [`crate::resolve`]).
    pub fn merged(&self, other: &Self) -> Self {
        let mut out = Vec::with_capacity(self.counters.len().max(other.counters.len()));
        let (mut a, mut b) = (
            self.counters.iter().peekable(),
            other.counters.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, Some(&&y)) => {
                    b.next();
                    y
                }
                (Some(&&x), Some(&&y)) => match x.id.cmp(&y.id) {
                    Ordering::Less => {
                        a.next();
                        x
                    }
                    Ordering::Greater => {
                        b.next();
                        y
                    }
                    Ordering::Equal => {
                        a.next();
                        b.next();
                        Counter {
                            id: x.id,
                            value: x.value.max(y.value),
                        }
                    }
                },
            };
            out.push(next);
        }
        VersionVector { counters: out }
    }

    /// Compares two vectors with missing counters read as 0.
    ///
    /// Concurrent results carry a sign: the lowest short ID whose counters differ decides
    /// ([`VersionOrdering::ConcurrentGreater`] when `self` is larger there). That sign is the
    /// final tie-break of conflict resolution, so every device must compute it identically.
    ///
    /// ```
    /// use syncd_conflict::{Counter, ShortId, VersionOrdering, VersionVector};
    /// let v = |c: &[(u64, u64)]| VersionVector::from_counters(
    ///     c.iter().map(|&(id, value)| Counter { id: ShortId(id), value }));
    /// assert_eq!(v(&[(42, 2)]).compare(&v(&[(43, 1)])), VersionOrdering::ConcurrentGreater);
    /// assert_eq!(v(&[]).compare(&v(&[(42, 0)])), VersionOrdering::Equal);
    /// ```
    pub fn compare(&self, other: &Self) -> VersionOrdering {
        // `first` is the sign at the lowest differing ID; `self_ahead`/`other_ahead` record
        // whether either side is larger anywhere.
        let mut first: Option<Ordering> = None;
        let (mut self_ahead, mut other_ahead) = (false, false);
        self.walk(other, |x, y| {
            let ord = x.cmp(&y);
            match ord {
                Ordering::Greater => self_ahead = true,
                Ordering::Less => other_ahead = true,
                Ordering::Equal => return,
            }
            if first.is_none() {
                first = Some(ord);
            }
        });
        match (self_ahead, other_ahead, first) {
            (false, false, _) => VersionOrdering::Equal,
            (true, false, _) => VersionOrdering::Greater,
            (false, true, _) => VersionOrdering::Lesser,
            (true, true, Some(Ordering::Greater)) => VersionOrdering::ConcurrentGreater,
            (true, true, _) => VersionOrdering::ConcurrentLesser,
        }
    }

    /// Lexicographic comparison of the dense vectors in short-ID order (the first differing
    /// counter decides). For concurrent vectors this agrees with the sign of
    /// [`VersionVector::compare`]; unlike `compare` it is a total order.
    pub fn cmp_lexicographic(&self, other: &Self) -> Ordering {
        let mut first = Ordering::Equal;
        self.walk(other, |x, y| {
            if first == Ordering::Equal {
                first = x.cmp(&y);
            }
        });
        first
    }

    /// Calls `f(self_value, other_value)` for every ID present in either vector, in ID order.
    fn walk(&self, other: &Self, mut f: impl FnMut(u64, u64)) {
        let (mut a, mut b) = (
            self.counters.iter().peekable(),
            other.counters.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(x), None) => {
                    f(x.value, 0);
                    a.next();
                }
                (None, Some(y)) => {
                    f(0, y.value);
                    b.next();
                }
                (Some(x), Some(y)) => match x.id.cmp(&y.id) {
                    Ordering::Less => {
                        f(x.value, 0);
                        a.next();
                    }
                    Ordering::Greater => {
                        f(0, y.value);
                        b.next();
                    }
                    Ordering::Equal => {
                        f(x.value, y.value);
                        a.next();
                        b.next();
                    }
                },
            }
        }
    }
}

impl FromIterator<Counter> for VersionVector {
    fn from_iter<I: IntoIterator<Item = Counter>>(iter: I) -> Self {
        VersionVector::from_counters(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionOrdering::*;

    /// A vector written as `(short id, counter)` pairs.
    type Pairs = &'static [(u64, u64)];

    fn v(c: &[(u64, u64)]) -> VersionVector {
        VersionVector::from_counters(c.iter().map(|&(id, value)| Counter {
            id: ShortId(id),
            value,
        }))
    }

    #[test]
    fn compare_matches_upstream_table() {
        // Cases from the spec (§1.2) plus the basic shapes of upstream's TestCompare.
        let table: &[(Pairs, Pairs, VersionOrdering)] = &[
            (&[], &[], Equal),
            (&[], &[(42, 0)], Equal),
            (&[(42, 0)], &[], Equal),
            (&[(42, 1)], &[], Greater),
            (&[], &[(42, 1)], Lesser),
            (&[(42, 1)], &[(42, 1)], Equal),
            (&[(42, 2)], &[(42, 1)], Greater),
            (&[(42, 1)], &[(42, 2)], Lesser),
            (&[(42, 1), (43, 1)], &[(42, 1)], Greater),
            (&[(42, 1)], &[(42, 1), (43, 1)], Lesser),
            (&[(22, 1), (42, 1)], &[(42, 1)], Greater),
            (&[(42, 2)], &[(43, 1)], ConcurrentGreater),
            (&[(43, 1)], &[(42, 2)], ConcurrentLesser),
            (
                &[(22, 23), (42, 1)],
                &[(22, 22), (42, 2)],
                ConcurrentGreater,
            ),
            (
                &[(22, 21), (42, 2), (43, 1)],
                &[(20, 1), (22, 22), (42, 1)],
                ConcurrentLesser,
            ),
        ];
        for (a, b, want) in table {
            assert_eq!(v(a).compare(&v(b)), *want, "{a:?} vs {b:?}");
            assert_eq!(v(b).compare(&v(a)), want.reverse(), "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn two_single_edits_on_a_common_base_favour_the_lower_short_id() {
        let base = v(&[(5, 100)]);
        let low = base.updated(ShortId(1), 200);
        let high = base.updated(ShortId(9), 200);
        assert_eq!(low.compare(&high), ConcurrentGreater);
    }

    #[test]
    fn update_uses_max_of_increment_and_clock() {
        let table: &[(Pairs, u64, u64, u64)] = &[
            // (vector, by, now, expected counter of `by`)
            (&[], 42, 0, 1),
            (&[], 42, 1_700_000_000, 1_700_000_000),
            (&[(42, 5)], 42, 0, 6),
            (&[(42, 5)], 42, 3, 6),
            (&[(42, 5)], 42, 100, 100),
            (&[(42, u64::MAX)], 42, 7, u64::MAX),
        ];
        for &(start, by, now, want) in table {
            let got = v(start).updated(ShortId(by), now);
            assert_eq!(got.get(ShortId(by)), want, "{start:?} by {by} at {now}");
            assert_eq!(got.compare(&v(start)) == Greater, want != u64::MAX);
        }
    }

    #[test]
    fn update_inserts_new_ids_in_sorted_position() {
        let got = v(&[(22, 1), (44, 1)]).updated(ShortId(33), 0);
        assert_eq!(got, v(&[(22, 1), (33, 1), (44, 1)]));
        let ids: Vec<u64> = got.counters().iter().map(|c| c.id.0).collect();
        assert_eq!(ids, [22, 33, 44]);
    }

    #[test]
    fn merge_is_element_wise_max() {
        let table: &[(Pairs, Pairs, Pairs)] = &[
            (&[], &[], &[]),
            (
                &[(22, 1), (42, 1)],
                &[(22, 1), (42, 1)],
                &[(22, 1), (42, 1)],
            ),
            (&[(22, 1), (42, 1)], &[(42, 2)], &[(22, 1), (42, 2)]),
            (
                &[(22, 2), (42, 1)],
                &[(22, 1), (42, 2)],
                &[(22, 2), (42, 2)],
            ),
            (
                &[(22, 1), (77, 1)],
                &[(42, 1)],
                &[(22, 1), (42, 1), (77, 1)],
            ),
        ];
        for (a, b, want) in table {
            assert_eq!(v(a).merged(&v(b)), v(want));
            assert_eq!(v(b).merged(&v(a)), v(want));
        }
    }

    #[test]
    fn from_counters_sorts_dedups_with_max_and_drops_zeros() {
        let got = v(&[(9, 1), (3, 4), (9, 7), (5, 0), (3, 2)]);
        assert_eq!(
            got.counters(),
            &[
                Counter {
                    id: ShortId(3),
                    value: 4
                },
                Counter {
                    id: ShortId(9),
                    value: 7
                },
            ]
        );
        assert_eq!(got.get(ShortId(5)), 0);
        assert!(v(&[(1, 0)]).is_empty());
    }

    #[test]
    fn lexicographic_order_matches_concurrent_sign() {
        let a = v(&[(22, 21), (42, 2), (43, 1)]);
        let b = v(&[(20, 1), (22, 22), (42, 1)]);
        assert_eq!(a.cmp_lexicographic(&b), Ordering::Less);
        assert_eq!(a.compare(&b), ConcurrentLesser);
    }
}
