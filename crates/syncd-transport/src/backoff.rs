//! Exponential reconnect backoff with jitter.

use std::time::Duration;

/// Reconnect delays: `initial`, doubling up to `max`, each scaled by a random factor in
/// `[1 - jitter, 1 + jitter]` so that many peers restarting together do not dial in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay after a failed dial.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Relative jitter, clamped to `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The un-jittered delay before attempt `failures` (0 = after the first failure).
    pub fn base_delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The jittered delay before the next attempt after `failures` consecutive failures.
    pub fn delay(&self, failures: u32) -> Duration {
        let base = self.base_delay(failures);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let scale = 1.0 + jitter * (rand::random::<f64>() * 2.0 - 1.0);
        base.mul_f64(scale.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_delay_doubles_then_caps() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: 0.0,
        };
        let got: Vec<u64> = (0..6).map(|n| b.base_delay(n).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jittered_delay_stays_within_bounds() {
        let b = Backoff {
            initial: Duration::from_secs(4),
            max: Duration::from_secs(60),
            jitter: 0.25,
        };
        for _ in 0..1000 {
            let d = b.delay(0);
            assert!(
                d >= Duration::from_secs(3) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }

    #[test]
    fn jitter_actually_varies_delays() {
        let b = Backoff::default();
        let first = b.delay(3);
        assert!((0..100).any(|_| b.delay(3) != first));
    }
}
