//! Keeping the daemon's resident set close to what it actually uses, with glibc's malloc.
//!
//! Measured on the 20,000-small-file initial sync (receiver, 2 cores): glibc had created 16
//! arenas (its default is 8 per core) holding 81 MB from the kernel while 18 MB were in use;
//! `malloc_trim(0)` on the idle daemon took its RSS from 80 MB to 46 MB. Freed memory inside an
//! arena is only handed back when it sits at the arena's top, so after a burst of work (a pull
//! pass, serving a peer's requests, a scan) the daemon kept its high-water mark for good.
//!
//! Two remedies, both for the `serve` process only:
//! - [`tune_allocator`] caps the number of arenas (fewer arenas, less memory stranded in them;
//!   the daemon's threads mostly wait on I/O, so contention on the arena locks is low);
//! - [`spawn_reclaimer`] starts a thread that, every [`RECLAIM_INTERVAL`], hands free heap pages
//!   back to the kernel (`malloc_trim(0)`) if the process did any work (used CPU) since its last
//!   look. An idle daemon is left alone; a busy one is trimmed every couple of seconds, which
//!   also keeps the peak down during a long sync.
//!
//! On anything but Linux with glibc both are no-ops (other allocators have their own policy).

use std::time::Duration;

/// How often the reclaimer looks at the process.
pub const RECLAIM_INTERVAL: Duration = Duration::from_secs(2);

/// CPU time the process must have used since the reclaimer's last look for it to trim: below
/// this the daemon was idle and there is nothing new to give back.
pub const RECLAIM_MIN_CPU: Duration = Duration::from_millis(10);

/// The most malloc arenas the daemon lets glibc create: the core count, at least 2, at most 4.
pub fn arena_cap() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(2, 4)
}

/// Whether the reclaimer should trim, given the process CPU time now and at its last look.
pub fn worth_trimming(cpu_now: Duration, cpu_at_last_look: Duration) -> bool {
    cpu_now.saturating_sub(cpu_at_last_look) >= RECLAIM_MIN_CPU
}

/// Caps glibc's arena count at [`arena_cap`]. Call once, early, before the runtime's threads
/// start (threads that already have an arena keep it). A `MALLOC_ARENA_MAX` set in the
/// environment wins, so an operator can still choose.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let cap = i32::try_from(arena_cap()).unwrap_or(2);
        // SAFETY: mallopt only changes malloc's tuning parameters; M_ARENA_MAX with a positive
        // value is documented for glibc and takes effect for arenas created afterwards.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, cap) };
        if ok != 1 {
            tracing::debug!(cap, "mallopt(M_ARENA_MAX) refused; keeping glibc's default");
        }
    }
}

/// Starts the reclaimer thread (named `syncd-reclaim`); it runs until the process exits.
/// Returns `None` where there is nothing to reclaim (not glibc) or the thread cannot start.
pub fn spawn_reclaimer() -> Option<std::thread::JoinHandle<()>> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("syncd-reclaim".into())
            .stack_size(64 * 1024)
            .spawn(|| {
                let mut last = process_cpu();
                loop {
                    std::thread::sleep(RECLAIM_INTERVAL);
                    let now = process_cpu();
                    if worth_trimming(now, last) {
                        trim();
                        // The trim's own CPU does not count as work to trim after.
                        last = process_cpu();
                    }
                }
            });
        match spawned {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the memory reclaimer thread");
                None
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Returns free heap pages of every arena to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes each arena's lock itself and only releases pages of free
    // chunks (madvise); it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// CPU time used by the whole process (all threads) so far; zero if the clock is unreadable.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive pointer.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// This process's resident memory in bytes (`/proc/self/statm` on Linux); 0 where the
/// platform offers no such file (macOS: `/rest/system/status` then reports 0).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Total memory in MiB (`MemTotal` of `/proc/meminfo` on Linux; 0 where unknown, macOS
/// included).
pub fn total_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_cap_is_between_two_and_four() {
        let cap = arena_cap();
        assert!((2..=4).contains(&cap), "cap {cap}");
    }

    #[test]
    fn trims_only_after_work() {
        let ms = Duration::from_millis;
        let table = [
            (ms(0), ms(0), false),
            (ms(109), ms(100), false),
            (ms(110), ms(100), true),
            (ms(5_000), ms(100), true),
            // A clock that went backwards (or failed and read zero) is no work.
            (ms(0), ms(100), false),
        ];
        for (now, last, want) in table {
            assert_eq!(worth_trimming(now, last), want, "now {now:?} last {last:?}");
        }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn process_cpu_moves_forward_with_work() {
        let before = process_cpu();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(process_cpu() > before);
    }
}
