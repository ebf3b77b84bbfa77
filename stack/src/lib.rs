//! xdptcp: a TCP/IP stack written from first principles.
//!
//! Layers, bottom up: [`wire`] parses and builds frames, [`tcp`] is the
//! sans-IO connection state machine, [`device`] moves frames (a simulated
//! link now, AF_XDP next), [`iface`] ties Ethernet/ARP/IPv4/ICMP/TCP
//! together, and [`simulation`] runs two stacks over a simulated link on a
//! virtual clock.

pub mod api;
pub mod device;
pub mod iface;
pub mod runtime;
pub mod simulation;
pub mod tcp;
pub mod time;
pub mod wire;
