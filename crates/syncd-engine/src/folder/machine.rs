//! The folder's decisions, without I/O: given what happened ([`Input`]), what the driver
//! knows of the folder right now ([`View`]) and the time, [`Machine::handle`] says what to do
//! next ([`Action`]). The folder actor in `folder.rs` is the driver: it runs each action
//! (scans, health checks, pulls, index reads), feeds their results back as inputs, and sleeps
//! until [`Machine::next_wake`] or the next message.
//!
//! Rules kept here:
//! - a pull starts only after a full scan has committed, never while one runs, never while
//!   the folder is paused, and not while it is in error unless the error is a full disk (then
//!   the pull is the retry);
//! - a failed pull is retried with a doubling delay (1 s up to 60 s; a full disk up to 10 s);
//!   a pull that changed something, or left work for another pass, is followed at once;
//! - a root that fails its health check (once a second) puts the folder in error; it is
//!   started again every 10 s until the check passes;
//! - a setting change that needs a new scanner waits for the pull in progress;
//! - a local commit can create a need by itself (a local version that loses to a peer's):
//!   the need is read again whenever the local sequence moved and no pull runs.

use std::time::Duration;

use tokio::time::Instant;

use crate::status::FolderState;

/// How often the root's health is checked while the folder runs.
pub(crate) const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// How long a folder in error (its root failed) waits before it starts again.
pub(crate) const HEALTH_RETRY: Duration = Duration::from_secs(10);
/// The longest wait before a failed pull is retried.
pub(crate) const PULL_RETRY_MAX: Duration = Duration::from_secs(60);
/// The first wait before a failed pull is retried.
const PULL_RETRY_MIN: Duration = Duration::from_secs(1);

/// What the driver knows of the folder when it hands the machine an input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct View {
    /// The folder's state as last set.
    pub(crate) state: FolderState,
    /// The configuration says paused.
    pub(crate) paused: bool,
    /// A full scan has committed since start.
    pub(crate) scanned: bool,
    /// The watcher runs (no periodic full scan is needed then).
    pub(crate) watching: bool,
    /// Our local sequence as last announced.
    pub(crate) local_seq: u64,
    /// The periodic full-scan interval (`None`: never).
    pub(crate) rescan_interval: Option<Duration>,
}

/// The facts of a finished pull that decide what comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PullSummary {
    /// Items installed or deleted.
    pub(crate) changed: bool,
    /// The pass stopped with work left (a batch limit), not because it was done.
    pub(crate) more: bool,
    /// Some items failed.
    pub(crate) failed: bool,
    /// A write failed for lack of space.
    pub(crate) no_space: bool,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    /// The actor starts.
    Begin,
    /// A requested full or partial scan finished (`ok`: it committed).
    ScanFinished { ok: bool },
    /// A targeted rescan (paths the puller found changed) finished.
    Rescanned,
    /// A peer's index changed, or a peer came or went.
    RemoteChanged,
    /// The pull task ended.
    PullDone(PullSummary),
    /// The folder was paused.
    Pause,
    /// The folder was resumed.
    Resume,
    /// The folder's configuration changed. `restart`: the scanner and the watcher must be
    /// built again.
    Reconfigured { was_paused: bool, restart: bool },
    /// Time passed (the driver also sends this after every other input).
    Tick,
    /// [`Action::CheckHealth`] found the root broken (the driver stopped the watcher, dropped
    /// the scanner and set the error).
    HealthFailed,
    /// [`Action::CheckNeed`]'s answer: items needed.
    NeedFound { need: u64 },
    /// [`Action::StartPull`] found the root broken just before pulling (the driver set the
    /// error): no pull runs.
    PullRefused,
    /// The driver ran everything for the input before: start a pull if one is due.
    Settle,
}

/// What to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Health check, scanner, initial full scan, watcher.
    Start,
    /// Count a restart as a pending rescan (the folder is not in sync until it committed).
    CountRestart,
    /// Stop the watcher, drop the scanner and [`Action::Start`] again; ends a counted restart.
    Restart,
    /// A counted restart will not happen (the folder was paused meanwhile).
    CancelRestart,
    /// Answer the configuration change (after [`Action::CountRestart`], before the work).
    Reply,
    /// Stop the watcher.
    StopWatcher,
    /// Set the state.
    SetState(FolderState),
    /// Set `Idle` if the state is `from` now (after the actions before this one).
    IdleIf(FolderState),
    /// The disk is full: say so and set the error.
    DiskFull,
    /// Check the root's health; on failure answer [`Input::HealthFailed`].
    CheckHealth,
    /// Read how many items are needed; answer [`Input::NeedFound`].
    CheckNeed,
    /// A periodic full scan (no watcher runs).
    FullScan,
    /// Check the root, then start a pull (or answer [`Input::PullRefused`]).
    StartPull,
}

/// The folder's scheduling state.
#[derive(Debug)]
pub(crate) struct Machine {
    pull_wanted: bool,
    pulling: bool,
    restart_pending: bool,
    /// The last pull ran out of disk space: the folder is in error and the pull is retried
    /// (with backoff) until a write succeeds.
    disk_full: bool,
    retry_at: Option<Instant>,
    retry_delay: Duration,
    next_rescan: Option<Instant>,
    next_health: Instant,
    last_health: Instant,
    need_checked_at: u64,
}

impl Machine {
    /// A machine for a folder whose local sequence is `local_seq`, at `now`.
    pub(crate) fn new(now: Instant, local_seq: u64) -> Machine {
        Machine {
            pull_wanted: false,
            pulling: false,
            restart_pending: false,
            disk_full: false,
            retry_at: None,
            retry_delay: PULL_RETRY_MIN,
            next_rescan: None,
            next_health: now + HEALTH_EVERY,
            last_health: now,
            need_checked_at: local_seq,
        }
    }

    /// Whether a pull runs.
    #[cfg(test)]
    pub(crate) fn pulling(&self) -> bool {
        self.pulling
    }

    /// When the machine next has something to do without any input.
    pub(crate) fn next_wake(&self) -> Instant {
        let mut wake = self.next_health.min(self.last_health + HEALTH_RETRY);
        if let Some(t) = self.retry_at {
            wake = wake.min(t);
        }
        if let Some(t) = self.next_rescan {
            wake = wake.min(t);
        }
        wake
    }

    /// Handles one input; returns the actions to run, in order.
    pub(crate) fn handle(&mut self, input: Input, now: Instant, v: View) -> Vec<Action> {
        let rescan_at = |v: &View| v.rescan_interval.map(|d| now + d);
        match input {
            Input::Begin => {
                if v.paused {
                    return Vec::new();
                }
                self.pull_wanted = true;
                self.next_rescan = rescan_at(&v);
                vec![Action::Start]
            }
            Input::ScanFinished { ok } => {
                self.pull_wanted |= ok;
                Vec::new()
            }
            Input::Rescanned | Input::RemoteChanged => {
                self.pull_wanted = true;
                Vec::new()
            }
            Input::PullDone(s) => self.pull_done(s, now, v),
            Input::Pause => vec![Action::StopWatcher, Action::SetState(FolderState::Paused)],
            Input::Resume => {
                self.pull_wanted = true;
                vec![Action::SetState(FolderState::Idle), Action::Start]
            }
            Input::Reconfigured {
                was_paused,
                restart,
            } => {
                self.next_rescan = if v.paused { None } else { rescan_at(&v) };
                self.pull_wanted = true;
                if was_paused != v.paused {
                    if v.paused {
                        vec![
                            Action::Reply,
                            Action::StopWatcher,
                            Action::SetState(FolderState::Paused),
                        ]
                    } else {
                        vec![
                            Action::Reply,
                            Action::SetState(FolderState::Idle),
                            Action::Start,
                        ]
                    }
                } else if !v.paused && restart {
                    let mut out = Vec::new();
                    if !self.restart_pending {
                        out.push(Action::CountRestart);
                    }
                    out.push(Action::Reply);
                    if self.pulling {
                        self.restart_pending = true;
                    } else {
                        self.restart_pending = false;
                        out.push(Action::Restart);
                    }
                    out
                } else {
                    vec![Action::Reply]
                }
            }
            Input::Tick => self.tick(now, v),
            Input::HealthFailed => {
                self.last_health = now;
                Vec::new()
            }
            Input::NeedFound { need } => {
                self.pull_wanted |= need > 0;
                Vec::new()
            }
            Input::PullRefused => {
                self.pulling = false;
                self.disk_full = false;
                Vec::new()
            }
            Input::Settle => {
                let error = v.state == FolderState::Error;
                if self.pull_wanted
                    && !self.pulling
                    && v.scanned
                    && (self.disk_full || !error)
                    && v.state != FolderState::Paused
                {
                    self.pull_wanted = false;
                    self.pulling = true;
                    vec![Action::StartPull]
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn pull_done(&mut self, s: PullSummary, now: Instant, v: View) -> Vec<Action> {
        self.pulling = false;
        let mut out = Vec::new();
        if self.restart_pending {
            self.restart_pending = false;
            if v.paused {
                out.push(Action::CancelRestart);
            } else {
                out.push(Action::Restart);
                self.pull_wanted = true;
            }
        }
        if s.no_space {
            self.disk_full = true;
            out.push(Action::DiskFull);
            self.retry_at = Some(now + self.retry_delay);
            self.retry_delay = (self.retry_delay * 2).min(HEALTH_RETRY);
            return out;
        }
        if self.disk_full {
            out.push(Action::IdleIf(FolderState::Error));
        }
        self.disk_full = false;
        out.push(Action::IdleIf(FolderState::Syncing));
        if s.more || (s.changed && !s.failed) {
            self.pull_wanted = true;
            self.retry_delay = PULL_RETRY_MIN;
        } else if s.failed {
            self.retry_at = Some(now + self.retry_delay);
            self.retry_delay = (self.retry_delay * 2).min(PULL_RETRY_MAX);
        } else {
            self.retry_delay = PULL_RETRY_MIN;
        }
        out
    }

    fn tick(&mut self, now: Instant, v: View) -> Vec<Action> {
        let mut out = Vec::new();
        let error = v.state == FolderState::Error;
        // A root that vanishes or loses its marker must stop everything at once: otherwise
        // the watcher would record every file as deleted.
        if now >= self.next_health {
            self.next_health = now + HEALTH_EVERY;
            if !error && v.state != FolderState::Paused {
                out.push(Action::CheckHealth);
            }
        }
        if error && !self.disk_full && !v.paused {
            if now >= self.last_health + HEALTH_RETRY {
                self.last_health = now;
                out.push(Action::Start);
                self.pull_wanted = true;
            }
        } else {
            // The retry counts from the last moment the folder was not waiting for one (so
            // its deadline never lies in the past while nothing waits for it).
            self.last_health = now;
        }
        if v.local_seq != self.need_checked_at && !self.pulling && self.retry_at.is_none() {
            self.need_checked_at = v.local_seq;
            out.push(Action::CheckNeed);
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.pull_wanted = true;
        }
        if self.next_rescan.is_some_and(|t| now >= t) {
            self.next_rescan = v.rescan_interval.map(|d| now + d);
            if !v.watching && v.scanned {
                out.push(Action::FullScan);
                self.pull_wanted = true;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn view() -> View {
        View {
            state: FolderState::Idle,
            paused: false,
            scanned: true,
            watching: true,
            local_seq: 0,
            rescan_interval: Some(Duration::from_secs(3600)),
        }
    }

    /// A machine that has begun and finished its first scan, with no pull yet.
    fn started(now: Instant) -> Machine {
        let mut m = Machine::new(now, 0);
        assert_eq!(m.handle(Input::Begin, now, view()), vec![Action::Start]);
        m
    }

    fn settle(m: &mut Machine, now: Instant, v: View) -> Vec<Action> {
        m.handle(Input::Settle, now, v)
    }

    #[test]
    fn a_paused_folder_does_not_start() {
        let now = Instant::now();
        let mut m = Machine::new(now, 0);
        let v = View {
            paused: true,
            state: FolderState::Paused,
            ..view()
        };
        assert_eq!(m.handle(Input::Begin, now, v), vec![]);
        m.handle(Input::RemoteChanged, now, v);
        assert_eq!(settle(&mut m, now, v), vec![], "no pull while paused");
    }

    #[test]
    fn the_first_pull_waits_for_the_first_scan_and_runs_once_at_a_time() {
        let now = Instant::now();
        let mut m = started(now);
        let unscanned = View {
            scanned: false,
            ..view()
        };
        assert_eq!(settle(&mut m, now, unscanned), vec![]);
        assert_eq!(settle(&mut m, now, view()), vec![Action::StartPull]);
        m.handle(Input::RemoteChanged, now, view());
        assert_eq!(settle(&mut m, now, view()), vec![], "one pull at a time");
        let done = m.handle(Input::PullDone(PullSummary::default()), now, view());
        assert_eq!(done, vec![Action::IdleIf(FolderState::Syncing)]);
        assert_eq!(
            settle(&mut m, now, view()),
            vec![Action::StartPull],
            "a change that came during the pull starts another"
        );
    }

    #[test]
    fn a_failed_pull_is_retried_with_a_doubling_delay_up_to_a_minute() {
        let mut now = Instant::now();
        let mut m = started(now);
        let failed = PullSummary {
            failed: true,
            ..PullSummary::default()
        };
        let mut waits = Vec::new();
        assert_eq!(settle(&mut m, now, view()), vec![Action::StartPull]);
        for _ in 0..8 {
            m.handle(Input::PullDone(failed), now, view());
            assert_eq!(settle(&mut m, now, view()), vec![], "not at once");
            // Time passes a second at a time until the retry pulls.
            let mut waited = 0;
            loop {
                now += S;
                waited += 1;
                m.handle(Input::Tick, now, view());
                if settle(&mut m, now, view()) == vec![Action::StartPull] {
                    break;
                }
            }
            waits.push(waited);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        // A pull that succeeds resets the delay.
        let ok = PullSummary {
            changed: true,
            ..PullSummary::default()
        };
        m.handle(Input::PullDone(ok), now, view());
        assert_eq!(settle(&mut m, now, view()), vec![Action::StartPull]);
        m.handle(Input::PullDone(failed), now, view());
        m.handle(Input::Tick, now + S, view());
        assert_eq!(settle(&mut m, now + S, view()), vec![Action::StartPull]);
    }

    #[test]
    fn a_full_disk_is_an_error_whose_retry_is_the_pull_itself() {
        let mut now = Instant::now();
        let mut m = started(now);
        assert_eq!(settle(&mut m, now, view()), vec![Action::StartPull]);
        let full = PullSummary {
            no_space: true,
            ..PullSummary::default()
        };
        assert_eq!(
            m.handle(Input::PullDone(full), now, view()),
            vec![Action::DiskFull]
        );
        let error = View {
            state: FolderState::Error,
            ..view()
        };
        now += S;
        assert_eq!(
            m.handle(Input::Tick, now, error),
            vec![],
            "no restart, no check"
        );
        assert_eq!(settle(&mut m, now, error), vec![Action::StartPull]);
        // Space came back: the error clears.
        assert_eq!(
            m.handle(Input::PullDone(PullSummary::default()), now, error),
            vec![
                Action::IdleIf(FolderState::Error),
                Action::IdleIf(FolderState::Syncing)
            ]
        );
    }

    #[test]
    fn a_broken_root_is_checked_every_second_and_started_again_every_ten() {
        let mut now = Instant::now();
        let mut m = started(now);
        assert_eq!(m.handle(Input::Tick, now, view()), vec![]);
        now += S;
        assert_eq!(
            m.handle(Input::Tick, now, view()),
            vec![Action::CheckHealth]
        );
        m.handle(Input::HealthFailed, now, view());
        let error = View {
            state: FolderState::Error,
            ..view()
        };
        assert_eq!(settle(&mut m, now, error), vec![], "no pull in error");
        now += Duration::from_secs(9);
        assert_eq!(m.handle(Input::Tick, now, error), vec![]);
        now += S;
        assert_eq!(m.handle(Input::Tick, now, error), vec![Action::Start]);
    }

    #[test]
    fn a_setting_change_restarts_the_scanner_after_the_pull_in_progress() {
        let now = Instant::now();
        let mut m = started(now);
        assert_eq!(settle(&mut m, now, view()), vec![Action::StartPull]);
        let change = Input::Reconfigured {
            was_paused: false,
            restart: true,
        };
        assert_eq!(
            m.handle(change.clone(), now, view()),
            vec![Action::CountRestart, Action::Reply]
        );
        assert_eq!(
            m.handle(change, now, view()),
            vec![Action::Reply],
            "counted once"
        );
        assert!(m.pulling());
        assert_eq!(
            m.handle(Input::PullDone(PullSummary::default()), now, view()),
            vec![Action::Restart, Action::IdleIf(FolderState::Syncing)]
        );
        // Without a pull, at once.
        let change = Input::Reconfigured {
            was_paused: false,
            restart: true,
        };
        assert_eq!(
            m.handle(change, now, view()),
            vec![Action::CountRestart, Action::Reply, Action::Restart]
        );
    }

    #[test]
    fn a_restart_waiting_for_a_pull_is_cancelled_when_the_folder_is_paused() {
        let now = Instant::now();
        let mut m = started(now);
        settle(&mut m, now, view());
        let change = Input::Reconfigured {
            was_paused: false,
            restart: true,
        };
        m.handle(change, now, view());
        let paused = View {
            paused: true,
            ..view()
        };
        let pause = Input::Reconfigured {
            was_paused: false,
            restart: false,
        };
        assert_eq!(
            m.handle(pause, now, paused),
            vec![
                Action::Reply,
                Action::StopWatcher,
                Action::SetState(FolderState::Paused)
            ]
        );
        assert_eq!(
            m.handle(Input::PullDone(PullSummary::default()), now, paused)[0],
            Action::CancelRestart
        );
    }

    #[test]
    fn the_next_wake_is_never_in_the_past_after_a_tick() {
        let mut now = Instant::now();
        let mut m = started(now);
        let states = [
            FolderState::Idle,
            FolderState::Error,
            FolderState::Paused,
            FolderState::Syncing,
        ];
        for i in 0..200u64 {
            now += Duration::from_millis(370);
            let v = View {
                state: states[(i % 4) as usize],
                watching: i % 3 == 0,
                ..view()
            };
            m.handle(Input::Tick, now, v);
            if i % 7 == 0 {
                let full = PullSummary {
                    no_space: i % 2 == 0,
                    failed: true,
                    ..PullSummary::default()
                };
                m.handle(Input::PullDone(full), now, v);
            }
            assert!(m.next_wake() > now, "step {i}: a busy loop");
        }
    }

    #[test]
    fn a_local_commit_makes_the_need_read_again_once() {
        let now = Instant::now();
        let mut m = started(now);
        let moved = View {
            local_seq: 5,
            ..view()
        };
        assert_eq!(m.handle(Input::Tick, now, moved), vec![Action::CheckNeed]);
        assert_eq!(
            m.handle(Input::Tick, now, moved),
            vec![],
            "once per sequence"
        );
        settle(&mut m, now, moved); // the first pull
        m.handle(Input::PullDone(PullSummary::default()), now, moved);
        m.handle(Input::NeedFound { need: 2 }, now, moved);
        assert_eq!(settle(&mut m, now, moved), vec![Action::StartPull]);
    }

    #[test]
    fn without_a_watcher_the_folder_is_scanned_at_its_interval() {
        let mut now = Instant::now();
        let mut m = Machine::new(now, 0);
        let v = View {
            watching: false,
            rescan_interval: Some(Duration::from_secs(60)),
            ..view()
        };
        m.handle(Input::Begin, now, v);
        assert_eq!(m.next_wake(), now + S, "the health check comes first");
        now += Duration::from_secs(60);
        let actions = m.handle(Input::Tick, now, v);
        assert!(actions.contains(&Action::FullScan), "{actions:?}");
        // With a watcher, no periodic full scan (the watcher rescans by itself).
        now += Duration::from_secs(60);
        let watching = View {
            watching: true,
            ..v
        };
        let actions = m.handle(Input::Tick, now, watching);
        assert!(!actions.contains(&Action::FullScan), "{actions:?}");
    }
}
