//! Application interfaces. [`percore`]: handlers that run inside a core's
//! loop and see received bytes in place. [`socket`]: the familiar blocking
//! `TcpListener`/`TcpStream`, for ordinary threads, over crossbeam channels.

pub mod percore;
pub mod socket;
