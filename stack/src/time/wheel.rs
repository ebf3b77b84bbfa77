//! A hierarchical timer wheel (Varghese & Lauck, as in Linux and Tokio).
//!
//! Seven levels of 64 slots; a slot at level `l` spans 64^l ticks of one
//! microsecond, so the wheel covers 64^7 us (about 51 days) and anything
//! later waits in the last slot. Inserting is O(1): the level is the
//! highest bit in which the deadline differs from the current time. A
//! 64-bit occupancy mask per level finds the next non-empty slot in one
//! instruction, so advancing over idle time costs nothing per tick.
//!
//! Cancelling is left to the owner: an entry carries a key and its
//! deadline, and the owner ignores entries that no longer match what it
//! registered (O(1), no search). Stale entries leave when their slot comes.

use super::Instant;

const LEVELS: usize = 7;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Entries a list keeps room for once emptied: a steady load of timers
/// allocates nothing, and a spike (a million connections closing) does
/// not leave its lists' memory behind (7 x 64 slots of 32 entries are
/// 229 KiB at most).
const KEEP_CAPACITY: usize = 32;
const MAX_TICK: u64 = (1 << (SLOT_BITS * LEVELS as u32)) - 1;

fn tick_of(t: Instant) -> u64 {
    // Round up so a timer never fires before its deadline.
    t.as_nanos().div_ceil(1_000)
}

pub struct TimerWheel<K> {
    levels: Vec<Level<K>>,
    /// Ticks fully processed: every entry with a deadline at or before
    /// this tick has been returned.
    elapsed: u64,
    len: usize,
    /// Inserted with a deadline already reached.
    due: Vec<(Instant, K)>,
    /// No slot's first tick comes before this one (`u64::MAX`: none is
    /// held), so an advance to an earlier time has nothing to do: a
    /// spinning core advances the wheel on every loop, and most loops
    /// end there instead of searching the levels.
    horizon: u64,
}

struct Level<K> {
    occupied: u64,
    slots: Vec<Vec<(Instant, K)>>,
}

impl<K> Default for TimerWheel<K> {
    fn default() -> Self {
        TimerWheel {
            levels: (0..LEVELS)
                .map(|_| Level {
                    occupied: 0,
                    slots: (0..SLOTS).map(|_| Vec::new()).collect(),
                })
                .collect(),
            elapsed: 0,
            len: 0,
            due: Vec::new(),
            horizon: u64::MAX,
        }
    }
}

impl<K> TimerWheel<K> {
    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `key` at `deadline`. A deadline already past is returned
    /// by the next `advance`.
    pub fn insert(&mut self, deadline: Instant, key: K) {
        self.len += 1;
        let tick = tick_of(deadline);
        if tick <= self.elapsed {
            self.due.push((deadline, key));
            return;
        }
        let tick = tick.min(self.elapsed + MAX_TICK);
        let (level, slot) = self.position(tick);
        // The slot's first tick, which `next_deadline` may name: an
        // advance then must look (and cascade), or time would not move.
        let shift = SLOT_BITS * level as u32;
        self.horizon = self.horizon.min(tick >> shift << shift);
        let l = &mut self.levels[level];
        l.slots[slot].push((deadline, key));
        l.occupied |= 1 << slot;
    }

    fn position(&self, tick: u64) -> (usize, usize) {
        let differing = (tick ^ self.elapsed) | (SLOTS as u64 - 1);
        let level = ((63 - differing.leading_zeros()) / SLOT_BITS) as usize;
        let level = level.min(LEVELS - 1);
        let slot = (tick >> (SLOT_BITS * level as u32)) as usize % SLOTS;
        (level, slot)
    }

    /// The first tick of the earliest non-empty slot: no entry is due
    /// before it (a lower bound when the slot is above level 0).
    fn next_slot(&self) -> Option<(u64, usize, usize)> {
        for (level, l) in self.levels.iter().enumerate() {
            let shift = SLOT_BITS * level as u32;
            let current = (self.elapsed >> shift) as usize % SLOTS;
            let ahead = if current == SLOTS - 1 {
                0
            } else {
                l.occupied & (u64::MAX << (current + 1))
            };
            let rotation = SLOT_BITS * (level as u32 + 1);
            let mut base = self.elapsed >> rotation << rotation;
            let slot = if ahead != 0 {
                ahead.trailing_zeros() as usize
            } else if level == LEVELS - 1 && l.occupied != 0 {
                // The top level wraps: a slot at or behind the current one
                // holds deadlines of the next rotation.
                base += 1 << rotation;
                l.occupied.trailing_zeros() as usize
            } else {
                continue;
            };
            return Some((base + ((slot as u64) << shift), level, slot));
        }
        None
    }

    /// When an entry with this deadline fires: at the next whole tick.
    pub fn fires_at(deadline: Instant) -> Instant {
        Instant::from_micros(tick_of(deadline))
    }

    /// The earliest time at which `advance` may fire something: exact at
    /// level 0, the start of the slot above it.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.due.is_empty() {
            return Some(Instant::from_micros(self.elapsed));
        }
        self.next_slot()
            .map(|(tick, _, _)| Instant::from_micros(tick))
    }

    /// Moves time to `now` and hands every entry due by then to `fire`.
    pub fn advance(&mut self, now: Instant, mut fire: impl FnMut(Instant, K)) {
        let now_tick = now.as_nanos() / 1_000;
        if self.due.is_empty() && now_tick < self.horizon {
            // Nothing due: as if not called (`elapsed` may lag behind
            // now; entries are filed against it, and still fire in time).
            return;
        }
        self.len -= self.due.len();
        // Lists are emptied in place and kept (up to `KEEP_CAPACITY`), so
        // a steady state of timers allocates nothing.
        let mut due = std::mem::take(&mut self.due);
        for (deadline, key) in due.drain(..) {
            fire(deadline, key);
        }
        if due.capacity() <= KEEP_CAPACITY {
            self.due = due;
        }
        while let Some((tick, level, slot)) = self.next_slot() {
            if tick > now_tick {
                break;
            }
            self.elapsed = tick;
            let l = &mut self.levels[level];
            l.occupied &= !(1 << slot);
            let mut entries = std::mem::take(&mut l.slots[slot]);
            self.len -= entries.len();
            for (deadline, key) in entries.drain(..) {
                if tick_of(deadline) <= now_tick {
                    fire(deadline, key);
                } else {
                    // Cascade: re-file at a finer level now that time is
                    // closer (never into this slot).
                    self.insert(deadline, key);
                }
            }
            if entries.capacity() <= KEEP_CAPACITY {
                self.levels[level].slots[slot] = entries;
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
        // A slot's first tick: no later than any entry in it.
        self.horizon = self.next_slot().map_or(u64::MAX, |(tick, _, _)| tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fired(w: &mut TimerWheel<u32>, now: Instant) -> Vec<u32> {
        let mut v = Vec::new();
        w.advance(now, |d, k| {
            assert!(d <= now, "fired {k} at {now:?} before its deadline {d:?}");
            v.push(k)
        });
        v.sort();
        v
    }

    #[test]
    fn fires_each_entry_once_at_its_deadline_across_levels() {
        let mut w = TimerWheel::default();
        // From 1 us to 3 days: every level is used.
        let deadlines: Vec<u64> = (0..40)
            .map(|i| 1u64 << i)
            .filter(|&d| d < 3 << 38)
            .collect();
        for (k, &d) in deadlines.iter().enumerate() {
            w.insert(Instant::from_micros(d), k as u32);
        }
        for (k, &d) in deadlines.iter().enumerate() {
            assert_eq!(
                fired(&mut w, Instant::from_micros(d - 1)),
                Vec::<u32>::new()
            );
            assert_eq!(fired(&mut w, Instant::from_micros(d)), vec![k as u32]);
        }
        assert!(w.is_empty());
    }

    #[test]
    fn matches_a_sorted_list_under_random_inserts_and_advances() {
        let mut rng = crate::device::rng::SimRng::new(42);
        let mut w = TimerWheel::default();
        let mut model: Vec<(Instant, u32)> = Vec::new();
        let mut now = Instant::ZERO;
        for k in 0..20_000u32 {
            let spread = [50u64, 5_000, 2_000_000, 90_000_000_000, 10_000_000_000_000]
                [rng.below(5) as usize];
            let d = now + Duration::from_micros(rng.below(spread));
            w.insert(d, k);
            model.push((d, k));
            if rng.below(4) == 0 {
                now += Duration::from_micros(rng.below(spread));
                let mut expect: Vec<u32> =
                    model.iter().filter(|e| e.0 <= now).map(|e| e.1).collect();
                model.retain(|e| e.0 > now);
                expect.sort();
                assert_eq!(fired(&mut w, now), expect);
                if let Some(first) = model.iter().map(|e| e.0).min() {
                    let bound = w.next_deadline().expect("entries are held");
                    assert!(bound <= first, "next_deadline {bound:?} after {first:?}");
                }
            }
        }
        assert_eq!(w.len(), model.len());
    }

    #[test]
    fn advancing_to_the_next_deadline_always_moves_on() {
        // An event loop sleeps until `next_deadline` and advances there:
        // each such step must fire something or name a later deadline,
        // also for an entry far up the levels (whose slot begins well
        // before it) and after advances that had nothing to do.
        let mut w = TimerWheel::default();
        w.advance(Instant::from_micros(3), |_, _: u32| panic!("empty"));
        let deadlines = [70u64, 5_000, 300_000, 20_000_000, 3_000_000_000];
        for (k, &d) in deadlines.iter().enumerate() {
            w.insert(Instant::from_micros(d), k as u32);
        }
        let mut fired = Vec::new();
        let mut last = None;
        for _ in 0..100 {
            let Some(at) = w.next_deadline() else { break };
            let before = fired.len();
            w.advance(at, |d, k| {
                assert!(d <= at);
                fired.push(k)
            });
            assert!(
                fired.len() > before || last.is_none_or(|l| at > l),
                "stuck at {at:?}"
            );
            last = Some(at);
        }
        assert_eq!(fired, vec![0, 1, 2, 3, 4], "all fired, in order");
    }

    #[test]
    fn a_past_deadline_fires_on_the_next_advance() {
        let mut w = TimerWheel::default();
        w.advance(Instant::from_millis(10), |_, _: u32| panic!("empty"));
        w.insert(Instant::from_millis(3), 7);
        assert_eq!(fired(&mut w, Instant::from_millis(10)), vec![7]);
    }
}
