//! Per-folder runtime state and the folder state machine.

use std::time::SystemTime;

use syncd_types::FolderId;

use crate::event::{Event, EventBus};
use crate::status::{FileError, FolderState};

/// The mutable runtime status of one folder, behind a std mutex (never held across `.await`).
#[derive(Debug, Clone)]
pub(crate) struct FolderRuntime {
    pub(crate) state: FolderState,
    pub(crate) state_changed: SystemTime,
    pub(crate) error: Option<String>,
    pub(crate) errors: Vec<FileError>,
    pub(crate) watch_error: Option<String>,
}

impl FolderRuntime {
    pub(crate) fn new(paused: bool) -> Self {
        FolderRuntime {
            state: if paused {
                FolderState::Paused
            } else {
                FolderState::Idle
            },
            state_changed: SystemTime::now(),
            error: None,
            errors: Vec::new(),
            watch_error: None,
        }
    }

    /// Moves to `to` (with `error` when `to` is `Error`), emitting `StateChanged` when the
    /// state or the error actually changes.
    pub(crate) fn set_state(
        &mut self,
        folder: &FolderId,
        to: FolderState,
        error: Option<String>,
        bus: &EventBus,
    ) {
        let error = if to == FolderState::Error {
            error
        } else {
            None
        };
        if self.state == to && self.error == error {
            return;
        }
        let from = self.state;
        self.state = to;
        self.error = error.clone();
        self.state_changed = SystemTime::now();
        bus.emit(Event::StateChanged {
            folder: folder.clone(),
            from,
            to,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fid() -> FolderId {
        FolderId::new("f").unwrap()
    }

    #[test]
    fn state_change_emits_one_event_with_from_and_to() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut rt = FolderRuntime::new(false);
        rt.set_state(&fid(), FolderState::Scanning, None, &bus);
        match rx.try_recv().unwrap() {
            Event::StateChanged { from, to, .. } => {
                assert_eq!((from, to), (FolderState::Idle, FolderState::Scanning))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn same_state_is_not_an_event() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut rt = FolderRuntime::new(false);
        rt.set_state(&fid(), FolderState::Idle, None, &bus);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn error_is_kept_only_in_error_state() {
        let bus = EventBus::new();
        let mut rt = FolderRuntime::new(false);
        rt.set_state(
            &fid(),
            FolderState::Error,
            Some("folder path missing".into()),
            &bus,
        );
        assert_eq!(rt.error.as_deref(), Some("folder path missing"));
        rt.set_state(&fid(), FolderState::Idle, Some("ignored".into()), &bus);
        assert_eq!(rt.error, None);
    }

    #[test]
    fn paused_folder_starts_paused() {
        assert_eq!(FolderRuntime::new(true).state, FolderState::Paused);
    }
}
