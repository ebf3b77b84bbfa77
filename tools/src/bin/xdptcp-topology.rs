//! Creates or removes a test topology: two network namespaces joined by a
//! veth pair, our stack's side (no kernel address) and a kernel peer.
//!
//!   xdptcp-topology up NAME [--subnet N] [--queues Q] [--mtu M] [--kernel-both] [--middle]
//!   xdptcp-topology down NAME
//!
//! `up` replaces a topology of the same name left by a crashed run; `down`
//! succeeds whether or not it exists. Both need root.

use std::process::ExitCode;
use xdptcp_tools::topology::{is_root, Topology};

const USAGE: &str = "usage:\n  xdptcp-topology up NAME [--subnet N] [--queues Q] [--mtu M] [--kernel-both] [--middle]\n  xdptcp-topology down NAME\n\nNAME: 1-12 letters or digits. Namespaces NAMEa (ours) and NAMEb (kernel peer),\nveth NAME0 / NAME1, addresses 10.N.0.1 (ours) and 10.N.0.2 (peer); default N = 99.\n--middle puts a router namespace NAMEm between them (NAMEm0 10.N.0.254, NAMEm1\n10.N.1.254; the peer becomes 10.N.1.2, our gateway is 10.N.0.254): impair there\nwith tc on NAMEm0/NAMEm1 where the kernel has netem.\n--kernel-both gives our end a kernel address too (kernel-to-kernel runs).";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdptcp-topology: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let (verb, name) = match (args.first(), args.get(1)) {
        (Some(v), Some(n)) if !n.starts_with('-') => (v.as_str(), n.as_str()),
        _ => return Err(USAGE.into()),
    };
    if !is_root() {
        return Err("needs root (namespaces and veth): run with sudo".into());
    }
    match verb {
        "up" => {
            let (mut subnet, mut queues, mut mtu) = (99u8, 1u32, 1500u32);
            let (mut kernel_both, mut middle) = (false, false);
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let mut value = |what: &str| {
                    rest.next()
                        .ok_or_else(|| format!("{flag} needs a value ({what})"))
                        .cloned()
                };
                match flag.as_str() {
                    "--subnet" => subnet = parse(&value("1-254")?, flag)?,
                    "--queues" => queues = parse(&value("1-64")?, flag)?,
                    "--mtu" => mtu = parse(&value("68-9000")?, flag)?,
                    "--kernel-both" => kernel_both = true,
                    "--middle" => middle = true,
                    _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
                }
            }
            let t = Topology::create_named(name, subnet, kernel_both, queues, mtu, middle)
                .map_err(|e| e.to_string())?;
            let via = match (&t.middle, t.gateway()) {
                (Some(m), Some(gw)) => format!(" via router {m} (our gateway {gw})"),
                _ => String::new(),
            };
            println!(
                "up: namespace {} (device {}, our stack {}/24) <-> namespace {} (device {}, kernel {}/24){via}, {queues} queue(s), mtu {mtu}",
                t.ours,
                t.dev,
                t.our_ip(),
                t.peer,
                t.peer_dev,
                t.peer_ip()
            );
            t.keep();
            Ok(())
        }
        "down" => {
            let existed = Topology::remove_named(name);
            println!(
                "down: {name} {}",
                if existed { "removed" } else { "was not there" }
            );
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn parse<T: std::str::FromStr>(v: &str, flag: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v}: not a valid number"))
}
