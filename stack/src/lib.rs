//! xdptcp: a TCP/IP stack written from first principles.
//!
//! Layers, bottom up: [`wire`] parses and builds frames, [`tcp`] is the
//! sans-IO connection state machine, [`device`] moves frames (simulated link
//! now, AF_XDP next), [`iface`] ties Ethernet/ARP/IPv4/ICMP/TCP together.

pub mod tcp;
pub mod time;
pub mod wire;
