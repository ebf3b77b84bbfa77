//! Helpers for tests against the Linux kernel over AF_XDP: a python3
//! program started in the peer namespace.

#![allow(dead_code)]

use std::io::BufRead;
use std::process::Stdio;
use xdptcp_tools::topology::Topology;

/// A peer process that is killed when the test ends, also when it fails
/// (a leftover would keep the test's output pipe open).
pub struct Peer(pub std::process::Child);

impl std::ops::Deref for Peer {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a python3 program in the peer namespace and waits until it
/// prints "ready" (it listens); returns it with its remaining output.
pub fn start_server(
    t: &Topology,
    program: &str,
) -> (Peer, std::io::BufReader<std::process::ChildStdout>) {
    let mut child = t
        .peer_cmd(&["python3", "-c", program])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 server");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the python3 server did not start");
    (Peer(child), out)
}
