//! Tools around the stack: test topologies on this machine, and a
//! userspace impairment forwarder for the paths between them.

pub mod impair;
pub mod topology;
