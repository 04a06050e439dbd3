//! The open-file limit: the puller sizes its durability batches by it, and a daemon raises it
//! at start ([`raise_open_files`]).

/// The most open files the daemon asks for, even where the hard limit allows more.
const WANTED_OPEN_FILES: u64 = 65_536;
/// macOS's per-process ceiling for the soft limit (`OPEN_MAX` in `<sys/syslimits.h>`).
const OPEN_MAX: u64 = 10_240;

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) towards the hard limit, up to
/// 65,536, as Syncthing (the Go runtime) does. A sync daemon holds many
/// files open at once: the puller stages hundreds of files per durability batch, and the
/// common soft default of 1024 would make it use smaller batches (more index commits).
/// Call it before [`crate::Engine::start`]: the puller reads the limit once, at its first
/// batch. Returns the soft limit in force afterwards; failures leave the limit as it was.
pub fn raise_open_files() -> Option<u64> {
    let lim = open_files()?;
    let wanted = lim.rlim_max.min(WANTED_OPEN_FILES);
    if lim.rlim_cur >= wanted {
        return Some(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit through a valid pointer; a soft limit at most the
    // hard limit needs no privilege.
    #[allow(unsafe_code)]
    let mut rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
    let mut wanted = wanted;
    if rc != 0 && wanted > OPEN_MAX && lim.rlim_cur < OPEN_MAX {
        // macOS refuses a soft limit above OPEN_MAX (10,240) even when the hard limit is
        // unlimited; ask for that instead, as Go's runtime does there.
        wanted = OPEN_MAX;
        let capped = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        #[allow(unsafe_code)]
        {
            rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) };
        }
    }
    if rc != 0 {
        tracing::debug!(
            soft = lim.rlim_cur,
            wanted,
            "could not raise the open-file limit"
        );
        return Some(lim.rlim_cur);
    }
    Some(wanted)
}

/// The soft and hard `RLIMIT_NOFILE` (`rlim_cur`, `rlim_max`); `None` if unreadable.
fn open_files() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive pointer.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim)
}

/// The soft open-file limit in force; 1024 (the common default) if unreadable.
pub(crate) fn open_files_soft() -> u64 {
    open_files().map_or(1024, |l| l.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_ends_at_least_where_it_was_and_within_the_hard_limit() {
        let before = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let after = raise_open_files();
        let Some(soft) = after else {
            panic!("getrlimit failed; /proc/self/limits: {before}");
        };
        let line = std::fs::read_to_string("/proc/self/limits")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(str::to_owned)
            .unwrap_or_default();
        // "Max open files <soft> <hard> files", each a number or "unlimited".
        let limit = |i: usize| match line.split_whitespace().nth(i) {
            Some("unlimited") => u64::MAX,
            Some(n) => n.parse::<u64>().unwrap(),
            None => panic!("no field {i} in {line:?}"),
        };
        let (now_soft, hard) = (limit(3), limit(4));
        assert_eq!(now_soft, soft, "{line}");
        assert!(soft <= hard, "{line}");
        assert!(soft >= hard.min(WANTED_OPEN_FILES), "{line}");
    }
}
