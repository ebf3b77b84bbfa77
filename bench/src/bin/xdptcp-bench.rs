//! xdptcp-bench: our stack next to the Linux kernel's in one run, on the
//! same veth path, the same scenarios and the same code: the device's
//! line rate, bulk transfer, latency during bulk, request/response (rr),
//! connect/request/response/close (crr) and the file-transfer app.
//!
//! Pairings (client in one namespace, server in the other):
//! kernel-kernel (std::net both ends; "-spin" with spinning reads for rr,
//! "-offload" on a veth with default offloads for bulk), xdptcp-kernel
//! (our socket API against std::net), xdptcp-xdptcp (ours both ends, each
//! stack's core on its own CPU). Each scenario runs `--rounds` times;
//! tables show the median [min-max]; ratios are medians of per-round
//! ratios. See docs/BENCHMARKS.md.

use bench::bed::{Bed, End, KernelSocket, Pairing, Settings};
use bench::control::{self, Control};
use bench::line_rate::Shape;
use bench::report::{Report, QUANTILES};
use bench::{app_transfer, line_rate, machine, native, plot, scenario};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdptcp::api::config::{
    interface_mac, interface_mtu, Algorithm, BusyPoll, UnsentLimit, UNSENT_AUTO_MAX,
};

#[derive(Parser)]
#[command(
    about = "Benchmarks xdptcp against the Linux kernel on a veth path, or across two hosts with `serve` and --peer (root)"
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Run across two hosts: the other runs `xdptcp-bench serve`; HOST is
    /// its kernel's address (the control connection and the kernel's
    /// pairings use it), PORT its control port (5201).
    #[arg(long, value_name = "HOST[:PORT]")]
    peer: Option<String>,
    #[command(flatten)]
    host: HostArgs,
    /// A short run (under 2 minutes): one round, short durations, 1 flow.
    #[arg(long)]
    quick: bool,
    /// Rounds of every scenario (default 3; 1 with --quick).
    #[arg(long)]
    rounds: Option<u32>,
    /// Seconds per bulk run (default 4; 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Write every figure, the machine and the ratios as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Directory for the Markdown report and the plots.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Run only the scenarios whose description contains this text (for
    /// example "rr 64", "xdptcp-xdptcp", "line rate"); ratios needing the
    /// others are left out.
    #[arg(long)]
    only: Option<String>,
    /// MTU of the veth path, for both stacks (ours uses 4 KiB UMEM frames
    /// above 2034, and sends frames larger than one in pieces, AF_XDP
    /// multi-buffer; at most 9000).
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Our stack's congestion control: bbr (its default), cubic or newreno.
    #[arg(long, default_value = "bbr")]
    cc: Algorithm,
    /// Bytes of the file the file-transfer scenario moves (default 256 MiB;
    /// 32 MiB with --quick).
    #[arg(long)]
    file_size: Option<u64>,
    /// Our stacks' bound on unsent bytes (TCP_NOTSENT_LOWAT): auto (derived
    /// from the path, the default), off, or bytes (64K). The kernel's
    /// "-lowat" runs use the same bound (auto: 64K, the most ours takes).
    #[arg(long, default_value = "auto", value_parser = apps::units::parse_unsent_limit)]
    unsent_limit: UnsentLimit,
    /// Every connection over IPv6 (fd00:N::/64 beside 10.N.0.0/24 on the
    /// same veth path), both stacks; the device figures count IPv6's
    /// header overhead.
    #[arg(long)]
    ipv6: bool,
    /// Preferred busy polling on our stacks' AF_XDP sockets, this many
    /// microseconds per poll (budget 64 packets); off by default.
    #[arg(long, value_name = "USECS")]
    busy_poll: Option<u32>,
}

/// This host's end of a run across two hosts.
#[derive(clap::Args, Clone)]
struct HostArgs {
    /// The interface both stacks use here: afxdp:IF (the kernel keeps
    /// its own address on it; our stack takes --ip).
    #[arg(long, value_name = "afxdp:IF")]
    dev: Option<String>,
    /// Our stack's IPv4 address on it (not the kernel's).
    #[arg(long, value_name = "ADDR/PREFIX")]
    ip: Option<String>,
    /// The CPU our stack's core is pinned to here (default: 1 for serve,
    /// 0 for the client, as on one machine).
    #[arg(long)]
    cpu: Option<usize>,
}

#[derive(Subcommand)]
enum Cmd {
    /// The other host of a two-host run: answers `xdptcp-bench --peer`
    /// clients, one at a time, until stopped.
    Serve {
        /// The control connection's port.
        #[arg(long, default_value_t = control::PORT)]
        port: u16,
        /// Serve one client, then exit.
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        host: HostArgs,
    },
}

impl HostArgs {
    /// This host's end: the interface, its MAC, our stack's address.
    fn end(&self, default_cpu: usize) -> Result<End, String> {
        let dev = self
            .dev
            .as_deref()
            .ok_or("--dev afxdp:IF is needed across two hosts")?;
        let dev = dev
            .strip_prefix("afxdp:")
            .ok_or_else(|| format!("--dev {dev}: give afxdp:IF"))?;
        let ip = self
            .ip
            .as_deref()
            .ok_or("--ip ADDR/PREFIX (our stack's address) is needed across two hosts")?;
        let mac = interface_mac(dev).map_err(|e| format!("{dev}: {e}"))?;
        let ours = control::parse_cidr(ip)?;
        Ok(End {
            netns: None,
            dev: dev.to_string(),
            mac,
            kernel: std::net::Ipv4Addr::UNSPECIFIED.into(),
            ours,
            ours6: None,
            cpu: self.cpu.unwrap_or(default_cpu),
        })
    }
}

/// The kernel's TCP_NOTSENT_LOWAT for a bound of ours: the same bytes, and
/// for `auto` the most it comes to (64 KiB).
fn kernel_lowat(l: UnsentLimit) -> Option<u32> {
    match l {
        UnsentLimit::Auto => Some(UNSENT_AUTO_MAX as u32),
        UnsentLimit::Bytes(n) => Some(n.min(i32::MAX as usize) as u32),
        UnsentLimit::Off => None,
    }
}

const PORT: u16 = 7600;

/// `--only`: the text a scenario's description must contain.
static ONLY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn main() {
    xdptcp_tools::shutdown::on_signal_clean_up("xdptcp-bench");
    let a = Args::parse();
    if let Some(o) = &a.only {
        let _ = ONLY.set(o.clone());
    }
    let r = match &a.cmd {
        Some(Cmd::Serve { port, once, host }) => serve(*port, *once, host),
        None => run(&a),
    };
    bench::offloads::restore_all();
    if let Err(e) = r {
        eprintln!("xdptcp-bench: {e}");
        std::process::exit(2);
    }
}

fn serve(port: u16, once: bool, host: &HostArgs) -> Result<(), String> {
    if !xdptcp_tools::topology::is_root() {
        return Err("needs root (AF_XDP): run with sudo".into());
    }
    control::serve(port, host.end(1)?, once)
}

struct Plan {
    settings: Settings,
    /// Across two hosts: the control connection and this host's end.
    remote: Option<(Arc<Control>, End)>,
    rounds: u32,
    bulk: Duration,
    flows: Vec<usize>,
    rr_count: u64,
    rr_sizes: Vec<usize>,
    crr_count: u64,
    line: Duration,
    file: u64,
    mtu: u32,
    unsent_limit: UnsentLimit,
    ipv6: bool,
}

impl Plan {
    /// The bed for `pairing`: on one machine a topology of its own on
    /// 10.`subnet`.0.0/24, with offloads off or the veth's defaults;
    /// across hosts the two interfaces, their offloads set to match.
    fn bed(&self, pairing: Pairing, subnet: u8, offloads_off: bool) -> Result<Bed, String> {
        match &self.remote {
            None => Bed::new(pairing, subnet, offloads_off, self.settings, self.ipv6),
            Some((control, here)) => {
                control.offloads(&here.dev, offloads_off)?;
                Bed::remote(pairing, self.settings, here.clone(), control)
            }
        }
    }
}

fn run(a: &Args) -> Result<(), String> {
    if !xdptcp_tools::topology::is_root() {
        return Err("needs root (namespaces, AF_XDP): run with sudo".into());
    }
    let q = a.quick;
    let mut settings = Settings {
        cc: a.cc,
        unsent_limit: a.unsent_limit,
        mtu: a.mtu,
        busy_poll: a.busy_poll.map(|usecs| BusyPoll { usecs, budget: 64 }),
    };
    let remote = match &a.peer {
        None => None,
        Some(peer) => {
            if a.ipv6 {
                return Err("--ipv6 with --peer: two-host runs are IPv4 for now".into());
            }
            let mut here = a.host.end(0)?;
            // Both stacks use the interface's MTU.
            settings.mtu =
                interface_mtu(&here.dev).map_err(|e| format!("{}: {e}", here.dev))? as u32;
            let peer = resolve(peer)?;
            eprintln!("control connection to {peer}");
            let control = Control::connect(peer, &settings)?;
            here.kernel = control.local_kernel;
            Some((control, here))
        }
    };
    let plan = Plan {
        settings,
        remote,
        rounds: a.rounds.unwrap_or(if q { 1 } else { 3 }).max(1),
        bulk: Duration::from_secs_f64(a.seconds.unwrap_or(if q { 1.0 } else { 4.0 })),
        flows: if q { vec![1] } else { vec![1, 2, 4] },
        rr_count: if q { 2_000 } else { 20_000 },
        rr_sizes: if q { vec![64] } else { vec![64, 1024] },
        crr_count: if q { 300 } else { 3_000 },
        line: Duration::from_secs(if q { 1 } else { 3 }),
        file: a.file_size.unwrap_or(if q { 32 << 20 } else { 256 << 20 }),
        mtu: settings.mtu,
        unsent_limit: a.unsent_limit,
        ipv6: a.ipv6,
    };
    if !(576..=9000).contains(&plan.mtu) {
        return Err(format!("--mtu {}: use 576 to 9000", plan.mtu));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut r = Report {
        machine: machine::facts(plan.mtu, true, &format!("{:?}", a.cc).to_lowercase()),
        ..Report::default()
    };
    if let Some((control, here)) = &plan.remote {
        let s = control.server_end();
        r.set_machine(
            "link",
            format!(
                "two hosts: {} here (ours {}), the peer's {} at {} (ours {}); CPU figures add both hosts' /proc/stat",
                here.dev, here.ours.0, s.dev, s.kernel, s.ours.0
            ),
        );
        r.set_machine(
            "clocks",
            format!(
                "one-way chunk latencies read on the receiver's clock, the sender's stamps shifted by the offset measured on the control connection, right within {:.1} us",
                control.clock_uncertainty().as_secs_f64() * 1e6
            ),
        );
        r.set_machine(
            "offloads",
            "off at both ends (checksum, TSO, GSO, GRO) but for kernel-kernel-offload, then restored".into(),
        );
    }
    // The machine's own interruptions of a spinning thread, measured
    // before anything of ours runs: the floor under the tails below.
    let jitter = machine::jitter(Duration::from_secs(1));
    let line = machine::jitter_line(&jitter);
    eprintln!("machine: {line}");
    r.machine.push(("spin_jitter".into(), line));
    let family = if a.ipv6 { "IPv6" } else { "IPv4" };
    r.machine.push(("ip".into(), family.into()));
    let started = Instant::now();
    for round in 1..=plan.rounds {
        eprintln!("round {round}/{}", plan.rounds);
        run_round(&plan, &mut r, round == plan.rounds);
    }
    ratios(&mut r);
    if let Some(mode) = bench::bed::device_mode() {
        r.set_machine(
            "xdp_mode",
            format!("{mode} (what the kernel granted our sockets)"),
        );
    }
    let table = r.table(false);
    println!("\n{table}");
    println!("{}", r.latency_table(false));
    println!(
        "({} round(s) in {:.0} s; our cores spin, the kernel's sockets block except in -spin)",
        plan.rounds,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &a.json {
        std::fs::write(path, r.json() + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        println!("json: {}", path.display());
    }
    let md = a.out.join("report.md");
    let mut text = String::from("# xdptcp-bench report\n\n## Machine\n\n");
    for (k, v) in &r.machine {
        text += &format!("- {k}: {v}\n");
    }
    text += &format!(
        "\n## Figures ({} round(s); median [min-max])\n\n{}\n## Latency\n\n{}",
        plan.rounds,
        r.table(true),
        r.latency_table(true)
    );
    match plot::write_all(&r, &a.out) {
        Ok(files) => {
            for f in files.iter().filter(|f| f.ends_with(".svg")) {
                let name = std::path::Path::new(f)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                text += &format!("\n![{name}]({name})\n");
            }
            println!("plots: {}", files.join(", "));
        }
        Err(e) => eprintln!("xdptcp-bench: {e}"),
    }
    std::fs::write(&md, text).map_err(|e| format!("{}: {e}", md.display()))?;
    println!("report: {}", md.display());
    if r.failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} scenario(s) failed (see above)",
            r.failures.len()
        ))
    }
}

/// Records a failure instead of aborting the whole run.
fn attempt<T>(r: &mut Report, what: &str, f: impl FnOnce() -> Result<T, String>) -> Option<T> {
    let is_bed = what.ends_with(": bed");
    if ONLY
        .get()
        .is_some_and(|o| !is_bed && !what.contains(o.as_str()))
    {
        return None;
    }
    eprintln!("  {what}");
    match f() {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("  FAILED {what}: {e}");
            r.failures.push((what.to_string(), e));
            None
        }
    }
}

fn run_round(plan: &Plan, r: &mut Report, last: bool) {
    // The device's ceiling, on a bed without our stacks.
    if let Some(bed) = attempt(r, "line rate: bed", || {
        plan.bed(Pairing::KernelKernel, 245, true)
    }) {
        for (shape, name) in [
            (Shape::Bare, "line rate"),
            (Shape::Tcp, "line rate tcp-shaped"),
        ] {
            for (reverse, dir) in [(false, "->"), (true, "<-")] {
                let s = format!("{name} {dir}");
                let measured = || line_rate::measure(&bed, plan.line, reverse, shape);
                if let Some(l) = attempt(r, &s, measured) {
                    r.add(&s, "device", "sent", "frames/s", l.sent_fps);
                    r.add(&s, "device", "received", "frames/s", l.received_fps);
                    r.add(&s, "device", "tcp-equivalent", "Mbit/s", l.tcp_mbit);
                    if shape == Shape::Tcp {
                        r.add(&s, "device", "answers per frame", "", l.answers_per_frame);
                    }
                }
            }
        }
    }
    for pairing in Pairing::ALL {
        let p = pairing.name();
        let Some(bed) = attempt(r, &format!("{p}: bed"), || plan.bed(pairing, 246, true)) else {
            continue;
        };
        if pairing.native() {
            native_round(plan, r, &bed, p, last);
            continue;
        }
        bulk_all(plan, r, &bed, p);
        // The kernel with 4 MiB buffers, and with its autotuned buffers and
        // the same bound on unsent bytes as ours ("-lowat").
        let mut kinds = vec![(p.to_string(), KernelSocket::Big)];
        if let (Pairing::KernelKernel, Some(b)) = (pairing, kernel_lowat(plan.unsent_limit)) {
            kinds.push((format!("{p}-lowat"), KernelSocket::Lowat(b)));
        }
        for (label, how) in kinds {
            let Some(l) = attempt(r, &format!("{label}: latency during bulk"), || {
                scenario::bulk_latency(&bed, plan.bulk, PORT + 1, how)
            }) else {
                continue;
            };
            record_bulk_latency(r, &label, l.mbit, &l.chunks, last);
            if last && !l.trace.is_empty() {
                r.trace = l.trace;
            }
        }
        let kinds: &[KernelSocket] = if pairing == Pairing::KernelKernel {
            &[KernelSocket::Big, KernelSocket::Spin]
        } else {
            &[KernelSocket::Big]
        };
        for &how in kinds {
            let label = if how == KernelSocket::Spin {
                format!("{p}-spin")
            } else {
                p.to_string()
            };
            for &size in &plan.rr_sizes {
                let what = format!("{label}: rr {size} B");
                if let Some(rt) = attempt(r, &what, || {
                    scenario::rr(&bed, size, plan.rr_count, how, PORT + 2)
                }) {
                    let s = format!("rr {size} B");
                    for (q, name) in QUANTILES {
                        r.add(
                            &s,
                            &label,
                            name,
                            "us",
                            rt.latency.value_at_quantile(q) as f64 / 1e3,
                        );
                    }
                    r.add(&s, &label, "transactions", "1/s", rt.per_sec);
                    if last && size == 64 {
                        r.latencies.push((format!("rr 64 B, {label}"), rt.latency));
                    }
                }
            }
        }
        // Fast Open needs the kernel at both ends here (ours at both ends
        // runs natively, below).
        let kernel_both = p == "kernel-kernel";
        for fast_open in [false, true].into_iter().filter(|&on| !on || kernel_both) {
            let s = if fast_open { "crr fast open" } else { "crr" };
            if let Some(c) = attempt(r, &format!("{p}: {s}"), || {
                scenario::crr(&bed, plan.crr_count, plan.bulk * 5, PORT + 3, fast_open)
            }) {
                r.add(s, p, "connections", "1/s", c.per_sec);
                r.add(
                    s,
                    p,
                    "p50",
                    "us",
                    c.latency.value_at_quantile(0.5) as f64 / 1e3,
                );
                r.add(
                    s,
                    p,
                    "p99",
                    "us",
                    c.latency.value_at_quantile(0.99) as f64 / 1e3,
                );
            }
        }
    }
    // The kernel as users get it: default offloads (TSO/GRO, 64 KB).
    if let Some(bed) = attempt(r, "kernel-kernel-offload: bed", || {
        plan.bed(Pairing::KernelKernel, 248, false)
    }) {
        bulk_all(plan, r, &bed, "kernel-kernel-offload");
    }
    if let Some(t) = attempt(r, "file_transfer app, xdptcp-xdptcp", || {
        let bed = plan.bed(Pairing::XdptcpXdptcp, 249, true)?;
        app_transfer::run(&bed, plan.file, PORT + 4)
    }) {
        let s = "file_transfer";
        r.add(s, XX, "goodput", "Mbit/s", t.mbit);
        r.add(s, XX, "rtt p50", "us", t.rtt_p50_us);
        r.add(s, XX, "rtt p99", "us", t.rtt_p99_us);
    }
}

/// Ours at both ends, on the per-core API (one flow; see native.rs).
fn native_round(plan: &Plan, r: &mut Report, bed: &Bed, p: &str, last: bool) {
    for (upload, dir) in [(true, "up"), (false, "down")] {
        let s = format!("bulk 1 flow {dir}");
        let cpu = bench::cpu::CpuMeter::start();
        if let Some(b) = attempt(r, &format!("{p}: {s}"), || {
            native::bulk(bed, upload, plan.bulk, PORT, false)
        }) {
            r.add(
                &s,
                p,
                "goodput",
                "Mbit/s",
                b.bytes as f64 * 8.0 / b.secs / 1e6,
            );
            r.add(
                &s,
                p,
                "cpu",
                "s/GB",
                (cpu.busy_seconds() + b.peer_cpu_s) / (b.bytes as f64 / 1e9),
            );
            r.add(&s, p, "acks per data segment", "", b.acks_per_segment);
        }
    }
    if let Some(b) = attempt(r, &format!("{p}: latency during bulk"), || {
        native::bulk(bed, true, plan.bulk, PORT + 1, true)
    }) {
        let mbit = b.bytes as f64 * 8.0 / b.secs / 1e6;
        record_bulk_latency(r, p, mbit, &b.latency, last);
    }
    for &size in &plan.rr_sizes {
        if let Some((h, per_sec)) = attempt(r, &format!("{p}: rr {size} B"), || {
            native::rr(bed, size, plan.rr_count as u32, PORT + 2)
        }) {
            let s = format!("rr {size} B");
            for (q, name) in QUANTILES {
                r.add(&s, p, name, "us", h.value_at_quantile(q) as f64 / 1e3);
            }
            r.add(&s, p, "transactions", "1/s", per_sec);
            if last && size == 64 {
                r.latencies.push((format!("rr 64 B, {p}"), h));
            }
        }
    }
    for fast_open in [false, true] {
        let s = if fast_open { "crr fast open" } else { "crr" };
        if let Some((h, per_sec)) = attempt(r, &format!("{p}: {s}"), || {
            native::crr(bed, plan.crr_count, plan.bulk * 5, PORT + 3, fast_open)
        }) {
            r.add(s, p, "connections", "1/s", per_sec);
            r.add(s, p, "p50", "us", h.value_at_quantile(0.5) as f64 / 1e3);
            r.add(s, p, "p99", "us", h.value_at_quantile(0.99) as f64 / 1e3);
        }
    }
}

/// One pairing's "latency during bulk": goodput and the chunks' latency
/// percentiles (and, in the last round, the distribution for the plots).
fn record_bulk_latency(
    r: &mut Report,
    label: &str,
    mbit: f64,
    chunks: &hdrhistogram::Histogram<u64>,
    last: bool,
) {
    let s = "latency during bulk";
    r.add(s, label, "goodput", "Mbit/s", mbit);
    for (q, name) in QUANTILES {
        if q >= 0.5 && q != 0.9 {
            r.add(
                s,
                label,
                name,
                "us",
                chunks.value_at_quantile(q) as f64 / 1e3,
            );
        }
    }
    if last {
        r.latencies
            .push((format!("64K chunk in bulk, {label}"), chunks.clone()));
    }
}

fn bulk_all(plan: &Plan, r: &mut Report, bed: &Bed, p: &str) {
    for &flows in &plan.flows {
        for (upload, dir) in [(true, "up"), (false, "down")] {
            let s = format!("bulk {flows} flow {dir}");
            if let Some(b) = attempt(r, &format!("{p}: {s}"), || {
                scenario::bulk(bed, flows, upload, plan.bulk, PORT)
            }) {
                r.add(&s, p, "goodput", "Mbit/s", b.mbit);
                r.add(&s, p, "cpu", "s/GB", b.cpu_s_per_gb);
            }
        }
    }
}

/// The ratios the report leads with: (name, ours, theirs, meaning), each
/// figure as (scenario, pairing, metric).
type Fig = (&'static str, &'static str, &'static str);
const RATIOS: [(&str, Fig, Fig, &str); 15] = [
    (
        "bulk_vs_line_rate",
        ("bulk 1 flow up", XX, "goodput"),
        ("line rate ->", "device", "tcp-equivalent"),
        "1 flow, ours both ends / what the device carries that way as TCP payload (higher is better)",
    ),
    (
        // The device less TCP's unavoidable work (line_rate.rs, Shape::Tcp):
        // what a TCP costing nothing itself could carry.
        "tcp_shaped_vs_line_rate",
        ("line rate tcp-shaped ->", "device", "tcp-equivalent"),
        ("line rate ->", "device", "tcp-equivalent"),
        "what the device carries with TCP's unavoidable work (copy and checksum in, read out, an ACK-sized frame back per two) / without it",
    ),
    (
        "bulk_vs_tcp_shaped_line_rate",
        ("bulk 1 flow up", XX, "goodput"),
        ("line rate tcp-shaped ->", "device", "tcp-equivalent"),
        "1 flow, ours both ends / what the device carries with TCP's unavoidable work: what our TCP itself costs (higher is better)",
    ),
    (
        "file_transfer_vs_line_rate",
        ("file_transfer", XX, "goodput"),
        ("line rate ->", "device", "tcp-equivalent"),
        "the app's goodput / what the device carries as TCP payload (higher is better)",
    ),
    (
        "bulk_vs_kernel_no_offload",
        ("bulk 1 flow up", XX, "goodput"),
        ("bulk 1 flow up", "kernel-kernel", "goodput"),
        "1 flow, ours both ends / kernel both ends, offloads off (higher is better)",
    ),
    (
        // Beside the one above: where the device itself carries less than
        // the kernel moves, that is what bounds us, not our TCP.
        "line_rate_vs_kernel_no_offload",
        ("line rate ->", "device", "tcp-equivalent"),
        ("bulk 1 flow up", "kernel-kernel", "goodput"),
        "what the device carries one way as TCP payload / kernel both ends, offloads off (above 1: the device is not what holds ours back)",
    ),
    (
        "bulk_vs_kernel",
        ("bulk 1 flow up", XX, "goodput"),
        ("bulk 1 flow up", "kernel-kernel-offload", "goodput"),
        "1 flow, ours / kernel with default offloads (higher is better)",
    ),
    (
        "bulk_xdptcp_to_kernel_vs_kernel",
        ("bulk 1 flow up", "xdptcp-kernel", "goodput"),
        ("bulk 1 flow up", "kernel-kernel", "goodput"),
        "1 flow, our sender to a kernel receiver / kernel both ends (higher is better)",
    ),
    (
        "rr64_p50_vs_kernel",
        ("rr 64 B", XX, "p50"),
        ("rr 64 B", "kernel-kernel-spin", "p50"),
        "p50 latency, ours / spinning kernel (lower is better)",
    ),
    (
        "rr64_p99_vs_kernel",
        ("rr 64 B", XX, "p99"),
        ("rr 64 B", "kernel-kernel-spin", "p99"),
        "p99 latency, ours / spinning kernel (lower is better)",
    ),
    (
        "rr64_p999_vs_kernel",
        ("rr 64 B", XX, "p99.9"),
        ("rr 64 B", "kernel-kernel-spin", "p99.9"),
        "p99.9 latency, ours / spinning kernel (lower is better)",
    ),
    (
        "bulk_latency_p50_vs_kernel",
        ("latency during bulk", XX, "p50"),
        ("latency during bulk", "kernel-kernel", "p50"),
        "64 KiB chunk during bulk, p50, ours both ends / kernel both ends (lower is better)",
    ),
    (
        "bulk_latency_p99_vs_kernel",
        ("latency during bulk", XX, "p99"),
        ("latency during bulk", "kernel-kernel", "p99"),
        "64 KiB chunk during bulk, p99, ours both ends / kernel both ends (lower is better)",
    ),
    (
        "crr_vs_kernel",
        ("crr", XX, "connections"),
        ("crr", "kernel-kernel", "connections"),
        "connections per second, ours / kernel (higher is better)",
    ),
    (
        "crr_fast_open_vs_kernel",
        ("crr fast open", XX, "connections"),
        ("crr fast open", "kernel-kernel", "connections"),
        "connections per second with TCP Fast Open, ours / kernel (higher is better)",
    ),
];
const XX: &str = "xdptcp-xdptcp";

fn ratios(r: &mut Report) {
    for (name, ours, theirs, how) in RATIOS {
        r.ratio(name, ours, theirs, how);
    }
}

/// `HOST[:PORT]` (a name, an IPv4 address, or [IPv6]:PORT).
fn resolve(peer: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let with_port = if peer.parse::<std::net::IpAddr>().is_ok() || !peer.contains(':') {
        let host = peer.trim_start_matches('[').trim_end_matches(']');
        if host.contains(':') {
            format!("[{host}]:{}", control::PORT)
        } else {
            format!("{host}:{}", control::PORT)
        }
    } else {
        peer.to_string()
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("--peer {peer}: {e}"))?
        .next()
        .ok_or_else(|| format!("--peer {peer}: no address"))
}
