//! Tools around the stack: test topologies on this machine, a userspace
//! impairment forwarder for the paths between them, and a clean stop on
//! SIGINT/SIGTERM for the programs that make them.

pub mod impair;
pub mod shutdown;
pub mod topology;
