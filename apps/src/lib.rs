//! Helpers shared by the xdptcp programs: human units in and out, and a
//! one-line JSON writer for machine-readable summaries.

pub mod cli;
pub mod digest;
pub mod echo;
pub mod json;
pub mod kernel_demo;
pub mod output;
pub mod stream;
pub mod units;
