//! TCP (RFC 9293): a deterministic state machine driven by segments,
//! timer expiries and user calls, with the current time passed in.

pub mod assembler;
pub mod autotune;
mod burst;
mod chrono;
pub mod config;
pub mod congestion;
pub mod connection;
mod cork;
pub mod ecn;
pub mod fast_open;
mod hystart;
pub mod info;
mod input;
pub mod invariants;
pub mod isn;
mod output;
mod pacing;
mod push;
mod quickack;
mod rack;
pub mod rate;
mod recovery;
pub mod recv_buffer;
pub mod reset;
pub mod ring;
pub mod rtt;
mod sack;
pub mod send_buffer;
pub mod sent;
pub mod seq;
pub mod state;
pub mod stats;
pub mod time_wait;
mod timestamps;
pub mod unsent;

pub use config::{Config, Keepalive};
pub use connection::{ConnError, Connection, Event, TcpError, Transmit};
pub use invariants::SeqSpace;
pub use seq::SeqNum;
pub use state::State;
pub use unsent::UnsentLimit;
