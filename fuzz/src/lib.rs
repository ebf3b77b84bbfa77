//! Fuzzing on stable Rust. Each target takes arbitrary bytes and drives one
//! entry point of the stack that takes bytes from the wire; a panic (or a
//! broken invariant, which the targets turn into one) is a finding.
//!
//! - `targets::wire`: every parser (Ethernet, ARP, IPv4, ICMP, TCP).
//! - `targets::iface`: an interface with a listener and live connections
//!   receiving a sequence of frames, seeded from real kernel captures.
//! - `targets::live`: the TCP input of one connection in each of the
//!   eleven states, with segments placed near its live sequence numbers.
//!
//! `xdptcp-fuzz` (src/bin) mutates a seed corpus for a bounded time;
//! `tools/fuzz.sh` runs every target. It is a random mutator, not a
//! coverage-guided one (cargo-fuzz and cargo-afl need nightly or an
//! instrumented toolchain); the structure-aware targets make up for part
//! of that by aiming at the numbers the stack checks.

pub mod input;
pub mod mutate;
pub mod targets;
