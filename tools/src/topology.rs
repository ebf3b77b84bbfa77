//! A test topology: two network namespaces joined by a veth pair, with
//! unique names, offloads off (so frames on the wire carry real checksums
//! and MSS-sized segments) and removal on drop, also after a panic. One
//! namespace is "ours": its veth end gets no kernel address, our stack owns
//! `10.N.0.1` there. The other holds the kernel peer at `10.N.0.2`.
//! With `kernel_both`, both ends get kernel addresses, for kernel-to-kernel
//! comparisons.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

pub struct Topology {
    pub ours: String,
    pub peer: String,
    /// Our end of the veth pair (in `ours`) and the peer's end.
    pub dev: String,
    pub peer_dev: String,
    pub subnet: u8,
}

fn run(args: &[&str]) -> io::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Topology {
    /// Creates the namespaces `x<tag><pid>a` / `...b` and the veth pair.
    /// `subnet` picks 10.`subnet`.0.0/24. With `kernel_both`, our end gets
    /// the kernel address .1 too.
    pub fn create(tag: &str, subnet: u8, kernel_both: bool) -> io::Result<Topology> {
        Self::create_with(tag, subnet, kernel_both, 1)
    }

    /// Like `create`, with `queues` receive and transmit queues on each
    /// veth end (for multi-core runs).
    pub fn create_with(
        tag: &str,
        subnet: u8,
        kernel_both: bool,
        queues: u32,
    ) -> io::Result<Topology> {
        let id = format!("x{}{}", tag, std::process::id() % 100_000);
        Self::create_named(&id, subnet, kernel_both, queues, 1500)
    }

    /// The topology called `id` (namespaces `<id>a`/`<id>b`, devices
    /// `<id>0`/`<id>1`), replacing any left over by a crashed run.
    pub fn create_named(
        id: &str,
        subnet: u8,
        kernel_both: bool,
        queues: u32,
        mtu: u32,
    ) -> io::Result<Topology> {
        if id.is_empty() || id.len() > 12 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "topology name '{id}': use 1-12 letters or digits (device names are short)"
                ),
            ));
        }
        if !is_root() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "creating network namespaces needs root: run with sudo",
            ));
        }
        let t = Topology {
            ours: format!("{id}a"),
            peer: format!("{id}b"),
            dev: format!("{id}0"),
            peer_dev: format!("{id}1"),
            subnet,
        };
        t.remove();
        run(&["ip", "netns", "add", &t.ours])?;
        run(&["ip", "netns", "add", &t.peer])?;
        let q = queues.max(1).to_string();
        run(&[
            "ip",
            "link",
            "add",
            &t.dev,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &t.ours,
            "type",
            "veth",
            "peer",
            "name",
            &t.peer_dev,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &t.peer,
        ])?;
        let peer_addr = format!("{}/24", t.peer_ip());
        run(&[
            "ip",
            "-n",
            &t.peer,
            "addr",
            "add",
            &peer_addr,
            "dev",
            &t.peer_dev,
        ])?;
        if kernel_both {
            let addr = format!("{}/24", t.our_ip());
            run(&["ip", "-n", &t.ours, "addr", "add", &addr, "dev", &t.dev])?;
        }
        let mtu = mtu.to_string();
        for (ns, d) in [(&t.ours, &t.dev), (&t.peer, &t.peer_dev)] {
            run(&["ip", "-n", ns, "link", "set", d, "mtu", &mtu])?;
            run(&["ip", "-n", ns, "link", "set", d, "up"])?;
            run(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", d, "tx", "off", "rx", "off", "tso",
                "off", "gso", "off", "gro", "off",
            ])?;
        }
        Ok(t)
    }

    pub fn our_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 0, 1)
    }

    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 0, 2)
    }

    /// Keeps the namespaces after this value is dropped (for the CLI).
    pub fn keep(self) {
        std::mem::forget(self);
    }

    /// Removes the topology called `id`; true if there was one.
    pub fn remove_named(id: &str) -> bool {
        let t = Topology {
            ours: format!("{id}a"),
            peer: format!("{id}b"),
            dev: String::new(),
            peer_dev: String::new(),
            subnet: 0,
        };
        let existed = std::path::Path::new(&format!("/run/netns/{}", t.ours)).exists()
            || std::path::Path::new(&format!("/run/netns/{}", t.peer)).exists();
        t.remove();
        std::mem::forget(t);
        existed
    }

    fn remove(&self) {
        for ns in [&self.ours, &self.peer] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Moves the calling thread into our namespace (interfaces and AF_XDP
    /// sockets are per namespace). Other threads are not affected.
    pub fn enter_ours(&self) -> io::Result<()> {
        let f = std::fs::File::open(format!("/run/netns/{}", self.ours))?;
        // SAFETY: setns on a valid namespace fd changes only this thread.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A command run inside the peer's namespace.
    pub fn peer_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.peer]).args(args);
        c
    }

    /// A command run inside our namespace (for kernel-to-kernel runs).
    pub fn ours_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ours]).args(args);
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}
