//! Which of a pass's files starts next. Pure: the pass starts what [`Schedule::next`] hands
//! out and reports each job's end with [`Schedule::finished`].
//!
//! Files start in plan order, at most [`Limits::files`] at once. Small files (see
//! [`small`](super::small)) start in groups of up to [`GROUP_FILES`] consecutive ones; a
//! larger file starts alone, and at most [`Limits::large`] of those at once: a large file met
//! while that many are being pulled waits (in order) and the small files after it go first,
//! so small files are pulled beside large ones instead of after them (a pass of 30 assets,
//! two 250 MB binaries and 5,000 small files did the small files last, on one core, while the
//! sender sat idle).

use std::collections::VecDeque;
use std::iter::Peekable;

use syncd_index::Needed;

use super::small::{GROUP_FILES, is_small};

/// How many files a pass pulls at once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Files in flight (a group counts its files; one that starts below the limit may take
    /// the count over it).
    pub(super) files: usize,
    /// Files larger than small ones in flight.
    pub(super) large: usize,
}

impl Limits {
    /// The limits of a pull pass: 32 files, half of them large at most (the other half is left
    /// to small files, whose pieces have a budget of their own).
    pub(super) const PASS: Limits = Limits {
        files: 32,
        large: 16,
    };
}

/// Files started together.
#[derive(Debug)]
pub(super) enum Job {
    /// Consecutive small files, pulled as a group.
    Small(Vec<Needed>),
    /// One file larger than small ones.
    Large(Box<Needed>),
}

impl Job {
    /// The files of the job.
    pub(super) fn files(&self) -> &[Needed] {
        match self {
            Job::Small(group) => group,
            Job::Large(n) => std::slice::from_ref(&**n),
        }
    }

    /// What [`Schedule::finished`] is told when the job ends: its number of files, and
    /// whether it is a large file.
    pub(super) fn weight(&self) -> (usize, bool) {
        (self.files().len(), matches!(self, Job::Large(_)))
    }
}

/// The files of a pass not started yet, and what is in flight.
pub(super) struct Schedule {
    limits: Limits,
    queue: Peekable<std::vec::IntoIter<Needed>>,
    /// Large files met while [`Limits::large`] were being pulled, in queue order.
    deferred: VecDeque<Needed>,
    files_in_flight: usize,
    large_in_flight: usize,
}

impl Schedule {
    /// The files of a pass, in plan order.
    pub(super) fn new(files: Vec<Needed>, limits: Limits) -> Schedule {
        Schedule {
            limits,
            queue: files.into_iter().peekable(),
            deferred: VecDeque::new(),
            files_in_flight: 0,
            large_in_flight: 0,
        }
    }

    /// The next job to start, counted as in flight; `None` while the limits are reached or
    /// nothing startable is left.
    pub(super) fn next(&mut self) -> Option<Job> {
        if self.files_in_flight >= self.limits.files {
            return None;
        }
        let large_free = self.large_in_flight < self.limits.large;
        let next = match self.deferred.pop_front() {
            Some(n) if large_free => Some(n),
            held => {
                if let Some(n) = held {
                    self.deferred.push_front(n);
                }
                let mut next = None;
                for n in self.queue.by_ref() {
                    if !is_small(&n) && !large_free {
                        self.deferred.push_back(n);
                    } else {
                        next = Some(n);
                        break;
                    }
                }
                next
            }
        }?;
        let job = if is_small(&next) {
            let mut group = vec![next];
            while group.len() < GROUP_FILES
                && let Some(n) = self.queue.next_if(is_small)
            {
                group.push(n);
            }
            Job::Small(group)
        } else {
            Job::Large(Box::new(next))
        };
        let (files, large) = job.weight();
        self.files_in_flight += files;
        self.large_in_flight += usize::from(large);
        Some(job)
    }

    /// A job of [`Job::weight`] `(files, large)` ended.
    pub(super) fn finished(&mut self, files: usize, large: bool) {
        self.files_in_flight = self.files_in_flight.saturating_sub(files);
        self.large_in_flight = self.large_in_flight.saturating_sub(usize::from(large));
    }

    /// Large files that join the pass after it began (see `Refill`): they start as if they
    /// had been met while the large files' limit was reached.
    pub(super) fn join(&mut self, late: Vec<Needed>) {
        self.deferred.extend(late);
    }

    /// Whether joined or deferred large files wait to start.
    pub(super) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncd_index::FileRecord;
    use syncd_types::{FileKind, RelPath};

    /// `s…` is a small file, `L…` a large one.
    fn file(name: &str) -> Needed {
        let mut global = FileRecord::new(RelPath::new(name).unwrap(), FileKind::File);
        global.size = if name.starts_with('L') {
            super::super::small::SMALL_FILE_MAX + 1
        } else {
            100
        };
        Needed {
            global,
            local: None,
            available: Vec::new(),
        }
    }

    /// Runs `steps` against a schedule of `files`: `next` shows the job started (or `-`),
    /// `done <first file of a job>` ends that job.
    fn trace(files: &str, limits: Limits, steps: &[&str]) -> Vec<String> {
        let mut s = Schedule::new(files.split_whitespace().map(file).collect(), limits);
        let mut running: Vec<(String, (usize, bool))> = Vec::new();
        let mut out = Vec::new();
        for step in steps {
            if let Some(name) = step.strip_prefix("done ") {
                let i = running.iter().position(|(n, _)| n == name).unwrap();
                let (_, (files, large)) = running.remove(i);
                s.finished(files, large);
                out.push(format!("done {name}"));
                continue;
            }
            if let Some(late) = step.strip_prefix("join ") {
                s.join(late.split_whitespace().map(file).collect());
                out.push(format!("join {late}"));
                continue;
            }
            assert_eq!(*step, "next");
            out.push(match s.next() {
                None => "-".to_owned(),
                Some(job) => {
                    let names: Vec<&str> =
                        job.files().iter().map(|n| n.global.name.as_str()).collect();
                    running.push((names[0].to_owned(), job.weight()));
                    match job {
                        Job::Small(_) => format!("group {}", names.join(" ")),
                        Job::Large(_) => format!("large {}", names[0]),
                    }
                }
            });
        }
        out
    }

    const TWO_LARGE: Limits = Limits { files: 4, large: 2 };

    #[test]
    fn small_files_start_in_groups_of_consecutive_ones() {
        let files = "s1 s2 s3 s4 s5 s6 s7 s8 s9 s10 L1 s11";
        assert_eq!(
            trace(
                files,
                Limits::PASS,
                &["next", "next", "next", "next", "next"]
            ),
            [
                "group s1 s2 s3 s4 s5 s6 s7 s8",
                "group s9 s10",
                "large L1",
                "group s11",
                "-",
            ]
        );
    }

    #[test]
    fn small_files_pass_large_ones_waiting_for_a_slot_and_those_start_in_order() {
        let files = "L1 L2 L3 L4 s1 s2";
        assert_eq!(
            trace(
                files,
                TWO_LARGE,
                &[
                    "next", "next", "next", "next", "done L1", "next", "done L2", "next", "next"
                ]
            ),
            [
                "large L1",
                "large L2",
                "group s1 s2",
                "-",
                "done L1",
                "large L3",
                "done L2",
                "large L4",
                "-",
            ]
        );
    }

    #[test]
    fn nothing_starts_while_the_files_limit_is_reached() {
        let files = "s1 s2 s3 L1 s4";
        let limits = Limits { files: 3, large: 2 };
        assert_eq!(
            trace(files, limits, &["next", "next", "done s1", "next", "next"]),
            ["group s1 s2 s3", "-", "done s1", "large L1", "group s4"]
        );
    }

    #[test]
    fn large_files_joining_the_pass_start_before_the_rest_of_the_queue() {
        let files = "s1 L1 s2";
        assert_eq!(
            trace(
                files,
                TWO_LARGE,
                &["join L9", "next", "next", "next", "next"]
            ),
            ["join L9", "large L9", "group s1", "large L1", "group s2"]
        );
    }
}
