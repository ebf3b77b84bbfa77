//! Application interfaces. [`percore`]: handlers that run inside a core's
//! loop and see received bytes in place. *(planned: the blocking socket
//! API over lock-free queues.)*

pub mod percore;
