//! A test topology: two network namespaces joined by a veth pair, with
//! unique names, offloads off (so frames on the wire carry real checksums
//! and MSS-sized segments) and removal on drop, also after a panic. One
//! namespace is "ours": its veth end gets no kernel address, our stack owns
//! `10.N.0.1` there. The other holds the kernel peer at `10.N.0.2`.
//! With `kernel_both`, both ends get kernel addresses, for kernel-to-kernel
//! comparisons. With `ipv6`, the same hosts have IPv6 addresses too:
//! fd00:N::1 (ours), fd00:N::2 (peer), or behind the router fd00:N:1::2
//! with the router at fd00:N::fe and fd00:N:1::fe.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

pub struct Topology {
    pub ours: String,
    pub peer: String,
    /// A router namespace between the two, if asked for (for impairment
    /// with `tc` on its devices, and to exercise the gateway path).
    pub middle: Option<String>,
    /// Our end of the veth pair (in `ours`) and the peer's end.
    pub dev: String,
    pub peer_dev: String,
    pub subnet: u8,
    /// The middle namespace bridges instead of routing (`Spec::bridge`).
    pub bridged: bool,
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

/// What a topology is made of.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// 10.`subnet`.0.0/24 (and 10.`subnet`.1.0/24 behind a middle router).
    pub subnet: u8,
    /// Our end gets the kernel address .1 too (kernel-to-kernel runs).
    pub kernel_both: bool,
    /// Receive and transmit queues on each veth end.
    pub queues: u32,
    pub mtu: u32,
    /// A router namespace between ours and the peer.
    pub middle: bool,
    /// Checksum and segmentation offloads off on every veth end, so frames
    /// carry finished checksums and MSS-sized segments. A plain
    /// `ip link add ... type veth` leaves them on.
    pub offloads_off: bool,
    /// With `middle`: the router drops forwarded packets at random with
    /// this probability (iptables' statistic match in the FORWARD chain;
    /// this kernel has no netem). 0 drops nothing.
    pub loss: f64,
    /// Drop in both directions, not only from ours to the peer.
    pub loss_both_ways: bool,
    /// With `middle`: a smaller MTU on the router's interface towards the
    /// peer. The router answers larger DF packets from our side with ICMP
    /// "fragmentation needed" (path MTU discovery), while the peer's own
    /// interface keeps `mtu`, so it still offers the larger MSS.
    pub far_mtu: Option<u32>,
    /// With `middle`: the middle namespace does not route; its two
    /// interfaces have no addresses and both ends share 10.`subnet`.0.0/24,
    /// for a bridge such as `impair::forward` (the impairment forwarder)
    /// to carry frames between them.
    pub bridge: bool,
    /// IPv6 addresses beside the IPv4 ones (kernel ends and router; ours
    /// only with `kernel_both`), without duplicate address detection.
    pub ipv6: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            subnet: 200,
            kernel_both: false,
            queues: 1,
            mtu: 1500,
            middle: false,
            offloads_off: true,
            loss: 0.0,
            loss_both_ways: false,
            far_mtu: None,
            bridge: false,
            ipv6: false,
        }
    }
}

/// For tests that need root (namespaces, AF_XDP). They are marked
/// `#[ignore = "needs root ..."]`, so an unprivileged `cargo test` lists
/// them as ignored instead of counting them as passed; `scripts/test.sh`
/// runs them with `--include-ignored` as root (and in CI). Run without
/// root anyway, they fail here, loudly, rather than pass having tested
/// nothing.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root for network namespaces and AF_XDP: run `bash scripts/test.sh` as root"
    );
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
        Self::create_spec(
            tag,
            Spec {
                subnet,
                kernel_both,
                queues,
                ..Spec::default()
            },
        )
    }

    /// A topology as `spec` says, with a name unique to this process and
    /// call: tests running in parallel in one process never share one.
    pub fn create_spec(tag: &str, spec: Spec) -> io::Result<Topology> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("x{}{}n{n}", tag, std::process::id() % 100_000);
        Self::build(&id, &spec)
    }

    /// The topology called `id` (namespaces `<id>a`/`<id>b`, devices
    /// `<id>0`/`<id>1`), replacing any left over by a crashed run.
    pub fn create_named(
        id: &str,
        subnet: u8,
        kernel_both: bool,
        queues: u32,
        mtu: u32,
        middle: bool,
    ) -> io::Result<Topology> {
        let spec = Spec {
            subnet,
            kernel_both,
            queues,
            mtu,
            middle,
            ..Spec::default()
        };
        Self::build(id, &spec)
    }

    /// The topology called `id` as `spec` says (for the CLI).
    pub fn create_named_spec(id: &str, spec: &Spec) -> io::Result<Topology> {
        Self::build(id, spec)
    }

    fn build(id: &str, spec: &Spec) -> io::Result<Topology> {
        let Spec {
            subnet,
            kernel_both,
            queues,
            mtu,
            middle,
            offloads_off,
            loss,
            loss_both_ways,
            far_mtu,
            bridge,
            ipv6,
        } = *spec;
        if bridge && (!middle || loss > 0.0 || far_mtu.is_some()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bridge needs the middle namespace, and no iptables loss or far MTU (the bridge does the impairing)",
            ));
        }
        if !(0.0..=1.0).contains(&loss) || (loss > 0.0 && !middle) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("loss {loss}: a probability from 0 to 1, and it needs the middle router"),
            ));
        }
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
            middle: middle.then(|| format!("{id}m")),
            dev: format!("{id}0"),
            peer_dev: format!("{id}1"),
            subnet,
            bridged: bridge,
        };
        Self::remove_named(id);
        let q = queues.max(1).to_string();
        let mut ends = vec![
            (t.ours.clone(), t.dev.clone()),
            (t.peer.clone(), t.peer_dev.clone()),
        ];
        for ns in [&t.ours, &t.peer].into_iter().chain(t.middle.as_ref()) {
            // Removed on SIGINT/SIGTERM too (`shutdown`), not only on drop.
            crate::shutdown::hold(ns);
            run(&["ip", "netns", "add", ns])?;
        }
        let veth = |a: &str, a_ns: &str, b: &str, b_ns: &str| {
            run(&[
                "ip",
                "link",
                "add",
                a,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "netns",
                a_ns,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "netns",
                b_ns,
            ])
        };
        let addr =
            |ns: &str, a: String, d: &str| run(&["ip", "-n", ns, "addr", "add", &a, "dev", d]);
        let addr6 = |ns: &str, a: String, d: &str| {
            run(&["ip", "-n", ns, "addr", "add", &a, "dev", d, "nodad"])
        };
        match &t.middle {
            None => veth(&t.dev, &t.ours, &t.peer_dev, &t.peer)?,
            Some(m) => {
                // ours 10.N.0.1 - (10.N.0.254 router 10.N.1.254) - 10.N.1.2 peer
                let (m0, m1) = (format!("{id}m0"), format!("{id}m1"));
                veth(&t.dev, &t.ours, &m0, m)?;
                veth(&m1, m, &t.peer_dev, &t.peer)?;
                ends.push((m.clone(), m0.clone()));
                ends.push((m.clone(), m1.clone()));
                let sysctl =
                    |setting: &str| run(&["ip", "netns", "exec", m, "sysctl", "-qw", setting]);
                if bridge {
                    // Nothing of the kernel's in between: the bridge
                    // program carries the frames.
                    for d in [&m0, &m1] {
                        sysctl(&format!("net.ipv6.conf.{d}.disable_ipv6=1"))?;
                    }
                } else {
                    addr(m, format!("10.{subnet}.0.254/24"), &m0)?;
                    addr(m, format!("10.{subnet}.1.254/24"), &m1)?;
                    sysctl("net.ipv4.ip_forward=1")?;
                    if ipv6 {
                        sysctl("net.ipv6.conf.all.forwarding=1")?;
                    }
                }
            }
        }
        addr(&t.peer, format!("{}/24", t.peer_ip()), &t.peer_dev)?;
        if kernel_both {
            addr(&t.ours, format!("{}/24", t.our_ip()), &t.dev)?;
        }
        let mtu = mtu.to_string();
        for (ns, d) in &ends {
            run(&["ip", "-n", ns, "link", "set", d, "mtu", &mtu])?;
            run(&["ip", "-n", ns, "link", "set", d, "up"])?;
            if !offloads_off {
                continue;
            }
            run(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", d, "tx", "off", "rx", "off", "tso",
                "off", "gso", "off", "gro", "off",
            ])?;
        }
        if ipv6 {
            addr6(&t.peer, format!("{}/64", t.peer_ip6()), &t.peer_dev)?;
            if kernel_both {
                addr6(&t.ours, format!("{}/64", t.our_ip6()), &t.dev)?;
            }
            if let (Some(m), Some((m0, m1))) = (&t.middle, t.middle_devs()) {
                if !bridge {
                    addr6(m, format!("fd00:{subnet}::fe/64"), &m0)?;
                    addr6(m, format!("fd00:{subnet}:1::fe/64"), &m1)?;
                }
            }
        }
        if let (Some(m), Some(far)) = (&t.middle, far_mtu) {
            let far = far.to_string();
            run(&[
                "ip",
                "-n",
                m,
                "link",
                "set",
                &format!("{id}m1"),
                "mtu",
                &far,
            ])?;
        }
        if let (Some(m), true) = (&t.middle, loss > 0.0) {
            // Packets from ours to the peer come in on m0 and leave on m1;
            // IPv6 has its own table (ip6tables).
            let p = format!("{loss}");
            let inbound = format!("{id}m0");
            let tables = if ipv6 {
                &["iptables", "ip6tables"][..]
            } else {
                &["iptables"]
            };
            for table in tables {
                let mut rule = vec!["ip", "netns", "exec", m, table, "-A", "FORWARD"];
                if !loss_both_ways {
                    rule.extend(["-i", &inbound]);
                }
                rule.extend([
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ]);
                run(&rule).map_err(|e| {
                    io::Error::other(format!(
                        "{e} (random loss needs {table} with the statistic match)"
                    ))
                })?;
            }
        }
        if t.middle.is_some() && !bridge {
            let via = format!("10.{subnet}.1.254");
            run(&["ip", "-n", &t.peer, "route", "add", "default", "via", &via])?;
            if kernel_both {
                let via = format!("10.{subnet}.0.254");
                run(&["ip", "-n", &t.ours, "route", "add", "default", "via", &via])?;
            }
            if ipv6 {
                // `onlink`: the gateway is on the link even while the veth's
                // carrier is still coming up (IPv6 checks a gateway against
                // routes whose link has carrier, and refuses it before).
                let route = |ns: &str, via: String, dev: &str| {
                    let r = ["ip", "-n", ns, "-6", "route", "add", "default", "via"];
                    run(&[&r[..], &[via.as_str(), "dev", dev, "onlink"]].concat())
                };
                route(&t.peer, format!("fd00:{subnet}:1::fe"), &t.peer_dev)?;
                if kernel_both {
                    route(&t.ours, format!("fd00:{subnet}::fe"), &t.dev)?;
                }
            }
        }
        Ok(t)
    }

    pub fn our_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 0, 1)
    }

    /// The kernel peer: on our subnet, or behind the middle router.
    pub fn peer_ip(&self) -> Ipv4Addr {
        match (&self.middle, self.bridged) {
            (Some(_), false) => Ipv4Addr::new(10, self.subnet, 1, 2),
            _ => Ipv4Addr::new(10, self.subnet, 0, 2),
        }
    }

    /// fd00:N:`link`::`host`, with N the subnet's decimal digits (as
    /// 10.N.0.1 has them): fd00:250::1 beside 10.250.0.1.
    pub fn ip6(&self, link: u16, host: u16) -> Ipv6Addr {
        let n = u16::from_str_radix(&self.subnet.to_string(), 16).unwrap_or(0);
        Ipv6Addr::new(0xfd00, n, link, 0, 0, 0, 0, host)
    }

    /// Our IPv6 address (a topology made with `Spec::ipv6`).
    pub fn our_ip6(&self) -> Ipv6Addr {
        self.ip6(0, 1)
    }

    /// The kernel peer's IPv6 address, on our prefix or behind the router.
    pub fn peer_ip6(&self) -> Ipv6Addr {
        let behind = u16::from(self.middle.is_some() && !self.bridged);
        self.ip6(behind, 2)
    }

    /// Our address of the family asked for (`ipv6`: `our_ip6`).
    pub fn our_addr(&self, ipv6: bool) -> IpAddr {
        if ipv6 {
            self.our_ip6().into()
        } else {
            self.our_ip().into()
        }
    }

    /// The kernel peer's address of the family asked for.
    pub fn peer_addr(&self, ipv6: bool) -> IpAddr {
        if ipv6 {
            self.peer_ip6().into()
        } else {
            self.peer_ip().into()
        }
    }

    /// Our IPv6 gateway: the middle router, if there is one.
    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.gateway().map(|_| self.ip6(0, 0xfe))
    }

    /// Our default gateway: the middle router, if there is one.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.middle
            .as_ref()
            .filter(|_| !self.bridged)
            .map(|_| Ipv4Addr::new(10, self.subnet, 0, 254))
    }

    /// The middle namespace's interfaces (towards ours, towards the peer).
    pub fn middle_devs(&self) -> Option<(String, String)> {
        let id = self.dev.strip_suffix('0')?;
        self.middle
            .as_ref()
            .map(|_| (format!("{id}m0"), format!("{id}m1")))
    }

    /// Moves the calling thread into the middle namespace.
    pub fn enter_middle(&self) -> io::Result<()> {
        match &self.middle {
            Some(m) => enter_namespace(m),
            None => Err(io::Error::other("this topology has no middle namespace")),
        }
    }

    /// Keeps the namespaces after this value is dropped (for the CLI).
    pub fn keep(self) {
        for ns in self.namespaces() {
            crate::shutdown::release(ns);
        }
        std::mem::forget(self);
    }

    fn namespaces(&self) -> impl Iterator<Item = &String> {
        [&self.ours, &self.peer]
            .into_iter()
            .chain(self.middle.as_ref())
    }

    /// Removes the topology called `id`; true if there was one.
    pub fn remove_named(id: &str) -> bool {
        let t = Topology {
            ours: format!("{id}a"),
            peer: format!("{id}b"),
            middle: Some(format!("{id}m")),
            dev: String::new(),
            peer_dev: String::new(),
            subnet: 0,
            bridged: false,
        };
        let existed = t
            .namespaces()
            .any(|ns| std::path::Path::new(&format!("/run/netns/{ns}")).exists());
        t.remove();
        std::mem::forget(t);
        existed
    }

    fn remove(&self) {
        for ns in self.namespaces() {
            crate::shutdown::remove_namespace(ns);
            crate::shutdown::release(ns);
        }
    }

    /// Moves the calling thread into our namespace (interfaces and AF_XDP
    /// sockets are per namespace). Other threads are not affected.
    pub fn enter_ours(&self) -> io::Result<()> {
        enter_namespace(&self.ours)
    }

    /// Moves the calling thread into the peer's namespace.
    pub fn enter_peer(&self) -> io::Result<()> {
        enter_namespace(&self.peer)
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

    /// Gives the kernel one more address (`ADDR/PREFIX`) on the veth end
    /// of the peer's namespace or of ours; an IPv6 one without duplicate
    /// address detection, so it is usable at once.
    pub fn add_kernel_address(&self, on_peer: bool, cidr: &str) -> io::Result<()> {
        let dev = if on_peer { &self.peer_dev } else { &self.dev };
        let mut args = vec!["ip", "addr", "add", cidr, "dev", dev.as_str()];
        if cidr.contains(':') {
            args.push("nodad");
        }
        let mut c = if on_peer {
            self.peer_cmd(&args)
        } else {
            self.ours_cmd(&args)
        };
        let o = c.output()?;
        if !o.status.success() {
            return Err(io::Error::other(format!(
                "ip addr add {cidr}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// Moves the calling thread into the network namespace `ns` (by name,
/// as `ip netns` keeps them). Other threads are not affected.
pub fn enter_namespace(ns: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a valid namespace fd changes only this thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}
