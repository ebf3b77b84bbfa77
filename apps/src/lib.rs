//! Helpers shared by the xdptcp programs: human units in and out, a
//! one-line JSON writer for machine-readable summaries, and the programs'
//! allocator.

/// mimalloc for every program linking this crate (apps and bench). With
/// glibc's malloc, freed memory stays with the arena of the thread that
/// freed it: the socket API's thread per connection made resident memory
/// climb with each round of connections (43 -> 83 -> 115 MiB in the soak
/// test) while the heap in use stayed at 17 MB; with mimalloc it stays
/// flat (40 -> 41 -> 43 MiB). docs/ROBUSTNESS.md has the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cli;
pub mod digest;
pub mod echo;
pub mod json;
pub mod kernel_demo;
pub mod output;
pub mod stream;
pub mod units;
