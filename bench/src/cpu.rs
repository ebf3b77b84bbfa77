//! CPU time the whole machine spent, from /proc/stat: both sides of a
//! benchmark, the kernel's softirq work and our spinning cores included.
//! (Per-side figures would miss the kernel's share, which is the point.)

pub struct CpuMeter {
    busy: u64,
}

/// Busy jiffies of all CPUs (everything but idle and iowait).
fn busy_jiffies() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    total - idle
}

impl CpuMeter {
    pub fn start() -> Self {
        CpuMeter {
            busy: busy_jiffies(),
        }
    }

    /// CPU seconds used since `start`.
    pub fn busy_seconds(&self) -> f64 {
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (busy_jiffies().saturating_sub(self.busy)) as f64 / hz
    }
}
