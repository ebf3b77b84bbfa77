//! Benchmarks that run our stack and the Linux kernel's side by side in one
//! run. `xdptcp-bench`: the harness (line rate, bulk, latency during bulk,
//! rr, crr, the file-transfer app; see docs/BENCHMARKS.md). `rtt` and
//! `lossy`: focused comparisons (round trips; bulk through a lossy path).

pub mod app_transfer;
pub mod bed;
pub mod control;
pub mod cpu;
pub mod job;
pub mod line_rate;
pub mod machine;
pub mod native;
pub mod offloads;
pub mod plot;
pub mod report;
pub mod scenario;
