//! Which connection survives when a device already has a live one (spec bep-wire §0.11, §9.12).

use std::time::Duration;

use syncd_types::DeviceId;

/// How long an existing connection is protected from replacement (Syncthing's rule: a second
/// connection within 10 s is dropped "already connected"; after that the new one wins).
pub const REPLACE_AFTER: Duration = Duration::from_secs(10);

/// What is known about one of the two competing connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Side {
    /// We dialed it (outbound) rather than accepted it.
    pub dialed_by_us: bool,
}

/// The outcome for a newly authenticated connection to a device that already has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Keep the existing connection and close the new one without a Close message.
    KeepExisting,
    /// Close the existing connection with `Close{"replacing connection"}` and keep the new one.
    ReplaceExisting,
}

/// Decides between an existing connection of age `existing_age` and a new one.
///
/// - After [`REPLACE_AFTER`] the new connection always wins (the old one is probably stale: the
///   peer would not dial if it still had it). This is Syncthing's rule, and both ends agree because
///   a peer that still has the old connection does not dial.
/// - Before that, with a stock Syncthing peer the existing connection is kept (Syncthing's rule).
/// - Before that, between two syncd peers (simultaneous dials), both ends keep the connection
///   dialed by the device with the smaller ID, so they pick the same TCP connection. Two
///   connections in the same direction mean the peer redialed: the newer wins.
pub(crate) fn decide(
    local: DeviceId,
    remote: DeviceId,
    peer_is_syncd: bool,
    existing: Side,
    existing_age: Duration,
    new: Side,
) -> Decision {
    if existing_age >= REPLACE_AFTER {
        return Decision::ReplaceExisting;
    }
    if !peer_is_syncd {
        return Decision::KeepExisting;
    }
    let we_are_smaller = local.as_bytes() < remote.as_bytes();
    let preferred = |s: Side| s.dialed_by_us == we_are_smaller;
    match (preferred(existing), preferred(new)) {
        (true, false) => Decision::KeepExisting,
        (false, true) => Decision::ReplaceExisting,
        // Same direction: the peer dialed (or we redialed) again, so the old one is stale.
        _ => Decision::ReplaceExisting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: Side = Side { dialed_by_us: true };
    const IN: Side = Side {
        dialed_by_us: false,
    };

    fn ids() -> (DeviceId, DeviceId) {
        (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]))
    }

    #[test]
    fn replacement_table() {
        let (small, big) = ids();
        let young = Duration::from_secs(2);
        let old = Duration::from_secs(11);
        use Decision::*;
        // (local, remote, syncd peer, existing, age, new) -> decision
        let table = [
            // Stock Syncthing peer: keep existing within 10 s, replace after.
            (small, big, false, OUT, young, IN, KeepExisting),
            (small, big, false, IN, young, OUT, KeepExisting),
            (small, big, false, IN, old, IN, ReplaceExisting),
            (small, big, false, OUT, REPLACE_AFTER, IN, ReplaceExisting),
            // syncd peer: the connection dialed by the smaller ID wins...
            (small, big, true, OUT, young, IN, KeepExisting),
            (small, big, true, IN, young, OUT, ReplaceExisting),
            (big, small, true, IN, young, OUT, KeepExisting),
            (big, small, true, OUT, young, IN, ReplaceExisting),
            // ...a redial in the same direction replaces...
            (small, big, true, OUT, young, OUT, ReplaceExisting),
            (big, small, true, IN, young, IN, ReplaceExisting),
            // ...and age beats direction.
            (small, big, true, OUT, old, IN, ReplaceExisting),
        ];
        for (i, (local, remote, syncd, existing, age, new, want)) in table.into_iter().enumerate() {
            assert_eq!(
                decide(local, remote, syncd, existing, age, new),
                want,
                "row {i}"
            );
        }
    }

    #[test]
    fn both_syncd_ends_keep_the_same_tcp_connection() {
        let (a, b) = ids();
        // Connection X dialed by a, connection Y dialed by b. Each end sees them in either order.
        let x_at_a = OUT;
        let y_at_a = IN;
        let x_at_b = IN;
        let y_at_b = OUT;
        let young = Duration::from_millis(5);
        let keeps_x = |d: Decision, existing_is_x: bool| match d {
            Decision::KeepExisting => existing_is_x,
            Decision::ReplaceExisting => !existing_is_x,
        };
        for a_sees_x_first in [true, false] {
            for b_sees_x_first in [true, false] {
                let da = if a_sees_x_first {
                    decide(a, b, true, x_at_a, young, y_at_a)
                } else {
                    decide(a, b, true, y_at_a, young, x_at_a)
                };
                let db = if b_sees_x_first {
                    decide(b, a, true, x_at_b, young, y_at_b)
                } else {
                    decide(b, a, true, y_at_b, young, x_at_b)
                };
                assert_eq!(keeps_x(da, a_sees_x_first), keeps_x(db, b_sees_x_first));
            }
        }
    }
}
