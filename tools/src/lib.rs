//! Tools around the stack: test topologies on this machine.

pub mod topology;
