//! Creates or removes a test topology: two network namespaces joined by a
//! veth pair, our stack's side (no kernel address) and a kernel peer.
//!
//!   xdptcp-topology up NAME [--subnet N] [--queues Q] [--mtu M] [--kernel-both] [--ipv6]
//!                           [--middle [--loss P [--loss-both-ways]] [--far-mtu M] [--bridge]]
//!   xdptcp-topology down NAME
//!
//! `up` replaces a topology of the same name left by a crashed run; `down`
//! succeeds whether or not it exists. Both need root.

use std::process::ExitCode;
use xdptcp_tools::topology::{is_root, Topology};

const USAGE: &str = "usage:\n  xdptcp-topology up NAME [--subnet N] [--queues Q] [--mtu M] [--kernel-both] [--ipv6] [--middle [--loss P [--loss-both-ways]] [--far-mtu M] [--bridge]]\n  xdptcp-topology down NAME\n\nNAME: 1-12 letters or digits. Namespaces NAMEa (ours) and NAMEb (kernel peer),\nveth NAME0 / NAME1, addresses 10.N.0.1 (ours) and 10.N.0.2 (peer); default N = 99.\n--middle puts a router namespace NAMEm between them (NAMEm0 10.N.0.254, NAMEm1\n10.N.1.254; the peer becomes 10.N.1.2, our gateway is 10.N.0.254).\n--loss P makes the router drop packets from ours to the peer at random with\nprobability P (iptables statistic match; --loss-both-ways for both directions);\n--far-mtu M gives the router's interface towards the peer a smaller MTU\n(path MTU discovery: the peer still offers the larger MSS).\n--bridge makes NAMEm a bridge instead of a router (no addresses, the peer stays\n10.N.0.2): run `ip netns exec NAMEm xdptcp-impair --a NAMEm0 --b NAMEm1 ...` in it\nto carry and impair the frames (loss, reordering, duplication, corruption).\n--kernel-both gives our end a kernel address too (kernel-to-kernel runs).\n--ipv6 adds IPv6 beside: fd00:N::1 (ours), fd00:N::2 (peer), behind --middle\nfd00:N:1::2 with the router at fd00:N::fe (our gateway) and fd00:N:1::fe.";

fn main() -> ExitCode {
    xdptcp_tools::shutdown::on_signal_clean_up("xdptcp-topology");
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
            let mut spec = xdptcp_tools::topology::Spec {
                subnet: 99,
                ..Default::default()
            };
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let mut value = |what: &str| {
                    rest.next()
                        .ok_or_else(|| format!("{flag} needs a value ({what})"))
                        .cloned()
                };
                match flag.as_str() {
                    "--subnet" => spec.subnet = parse(&value("1-254")?, flag)?,
                    "--queues" => spec.queues = parse(&value("1-64")?, flag)?,
                    "--mtu" => spec.mtu = parse(&value("68-9000")?, flag)?,
                    "--kernel-both" => spec.kernel_both = true,
                    "--middle" => spec.middle = true,
                    "--loss" => spec.loss = parse(&value("0-1")?, flag)?,
                    "--loss-both-ways" => spec.loss_both_ways = true,
                    "--far-mtu" => spec.far_mtu = Some(parse(&value("576-9000")?, flag)?),
                    "--bridge" => spec.bridge = true,
                    "--ipv6" => spec.ipv6 = true,
                    _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
                }
            }
            let t = Topology::create_named_spec(name, &spec).map_err(|e| e.to_string())?;
            let (queues, mtu) = (spec.queues, spec.mtu);
            let via = match (&t.middle, t.gateway()) {
                (Some(m), Some(gw)) if spec.loss > 0.0 => format!(
                    " via router {m} (our gateway {gw}; it drops {}% of packets {})",
                    spec.loss * 100.0,
                    if spec.loss_both_ways {
                        "both ways"
                    } else {
                        "from ours to the peer"
                    }
                ),
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
            if spec.ipv6 {
                let gw = t.gateway6().map(|g| format!(", our gateway {g}"));
                println!(
                    "    IPv6: our stack {}/64, kernel {}/64{}",
                    t.our_ip6(),
                    t.peer_ip6(),
                    gw.unwrap_or_default()
                );
            }
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
