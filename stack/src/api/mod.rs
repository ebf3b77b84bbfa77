//! Application interfaces. [`percore`]: handlers that run inside a core's
//! loop and see received bytes in place. [`socket`]: the familiar blocking
//! `TcpListener`/`TcpStream`, for ordinary threads, over crossbeam channels.
//! [`config`]: the one configuration type both start from. With the
//! re-exports below, an application needs nothing outside `api`.

pub mod config;
pub mod percore;
pub mod socket;

pub use crate::iface::Handle;
pub use crate::runtime::stats::{CoreCountersValue, CoreSnapshot};
pub use crate::runtime::{CoreApp, CoreContext, Runtime};
pub use crate::tcp::stats::Snapshot as ConnectionSnapshot;
pub use crate::tcp::{ConnError, TcpError};
pub use crate::time::Instant;
