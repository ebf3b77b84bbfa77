//! Runs of consecutive UMEM frames for frames larger than one UMEM frame
//! (jumbo frames, AF_XDP multi-buffer transmit).
//!
//! A jumbo frame is built in place across a run of adjacent UMEM frames,
//! which are one contiguous stretch of memory, and sent as one descriptor
//! per UMEM frame: no scratch buffer and no second copy. The run comes
//! back once the kernel has completed every piece it was sent as, in
//! whatever order the completions arrive.

pub(super) struct TxRuns {
    /// Address of the first run; runs follow each other.
    start: u64,
    frame_size: u64,
    frames_per_run: u64,
    /// Bases of the runs ready for a frame.
    free: Vec<u64>,
    /// Per run: pieces sent and not yet completed.
    pending: Vec<u32>,
}

impl TxRuns {
    /// `runs` runs of `frames_per_run` frames each, the first at `start`.
    pub(super) fn new(start: u64, runs: usize, frames_per_run: usize, frame_size: u64) -> Self {
        let run_bytes = frames_per_run as u64 * frame_size;
        TxRuns {
            start,
            frame_size,
            frames_per_run: frames_per_run as u64,
            free: (0..runs as u64)
                .rev()
                .map(|i| start + i * run_bytes)
                .collect(),
            pending: vec![0; runs],
        }
    }

    /// Bytes of one run: the largest frame it takes.
    pub(super) fn run_bytes(&self) -> usize {
        (self.frames_per_run * self.frame_size) as usize
    }

    /// The run `addr` lies in, if any.
    fn run_of(&self, addr: u64) -> Option<usize> {
        let i = addr.checked_sub(self.start)? / (self.frames_per_run * self.frame_size);
        (i < self.pending.len() as u64).then_some(i as usize)
    }

    /// True when `addr` is a frame of one of the runs.
    pub(super) fn owns(&self, addr: u64) -> bool {
        self.run_of(addr).is_some()
    }

    /// A run to build a frame in.
    pub(super) fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// The run `base` was not used after all.
    pub(super) fn put_back(&mut self, base: u64) {
        self.free.push(base);
    }

    /// The run `base` went out as `pieces` descriptors.
    pub(super) fn sent(&mut self, base: u64, pieces: u32) {
        let i = self.run_of(base).expect("a run's base");
        self.pending[i] = pieces;
    }

    /// The kernel completed the piece at `addr`; the run is free again
    /// once all its pieces are.
    pub(super) fn completed(&mut self, addr: u64) {
        let i = self.run_of(addr).expect("a frame of a run");
        debug_assert!(self.pending[i] > 0, "a completion nobody waited for");
        self.pending[i] = self.pending[i].saturating_sub(1);
        if self.pending[i] == 0 {
            let run_bytes = self.frames_per_run * self.frame_size;
            self.free.push(self.start + i as u64 * run_bytes);
        }
    }

    /// Frames in runs ready now (all of them once transmission is quiet).
    pub(super) fn free_frames(&self) -> usize {
        self.free.len() * self.frames_per_run as usize
    }
}

#[cfg(test)]
mod tests {
    use super::TxRuns;

    #[test]
    fn a_run_returns_once_every_piece_completed_in_any_order() {
        let mut r = TxRuns::new(4096, 3, 5, 2048);
        assert_eq!(r.run_bytes(), 10_240);
        let a = r.take().unwrap();
        let b = r.take().unwrap();
        assert_eq!(
            (a, b),
            (4096, 4096 + 10_240),
            "adjacent runs from the start"
        );
        r.sent(a, 5);
        r.sent(b, 2);
        for piece in [4, 0, 3, 1] {
            r.completed(a + piece * 2048);
        }
        r.completed(b + 2048);
        assert_eq!(r.free_frames(), 5, "neither run is wholly back yet");
        r.completed(a + 2 * 2048);
        assert_eq!(r.free_frames(), 10);
        r.completed(b);
        assert_eq!(r.free_frames(), 15);
        assert!(r.owns(4096 + 3 * 10_240 - 1));
        assert!(!r.owns(4096 + 3 * 10_240));
        assert!(!r.owns(0));
    }
}
