//! TCP (RFC 9293): a deterministic state machine driven by segments,
//! timer expiries and user calls, with the current time passed in.

pub mod assembler;
pub mod congestion;
pub mod isn;
pub mod ring;
pub mod rtt;
pub mod seq;
pub mod state;

pub use seq::SeqNum;
pub use state::State;
