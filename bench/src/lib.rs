//! Benchmarks that run our stack and the Linux kernel's side by side in one
//! run. `rtt`: request/response round trips over veth, the same client loop
//! once on `std::net` (the kernel) and once on `xdptcp::api::socket`.
