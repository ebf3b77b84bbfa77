//! A budget of so many events per second: what the interface sends on
//! its own account (ARP requests and neighbour solicitations, echo
//! replies, neighbour advertisements) is capped with one, so a flood of
//! requests cannot make it flood the link in turn (as Linux's
//! `icmp_msgs_per_sec`).

use crate::time::Instant;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct PerSecond {
    cap: u32,
    /// The second being counted, and the events taken in it.
    window: Option<(Instant, u32)>,
}

impl PerSecond {
    pub const fn new(cap: u32) -> Self {
        PerSecond { cap, window: None }
    }

    /// Takes one event from this second's budget; false if none is left.
    pub fn take(&mut self, now: Instant) -> bool {
        let (since, taken) = self.window.get_or_insert((now, 0));
        if now.saturating_since(*since) >= Duration::from_secs(1) {
            (*since, *taken) = (now, 0);
        }
        if *taken >= self.cap {
            return false;
        }
        *taken += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holds_the_cap_and_the_next_one_a_fresh_budget() {
        let mut b = PerSecond::new(3);
        let t0 = Instant::from_millis(500);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3);
        assert!(!b.take(t0 + Duration::from_millis(999)));
        assert!(b.take(t0 + Duration::from_secs(1)));
    }
}
