//! Moves a file (or generated data) between two xdptcp stacks and checks
//! that what arrived is exactly what was sent.
//!
//! `sim`: both stacks run in this process over the simulated link, on a
//! virtual clock, with the impairments asked for.

use apps::cli::{start_runtime, NetArgs};
use apps::digest::Algorithm as DigestAlg;
use apps::json::JsonLine;
use apps::units::{fmt_bytes, fmt_rate, parse_duration, parse_probability, parse_rate, parse_size};
use clap::{Args, Parser, Subcommand};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use xdptcp::api::config::{Algorithm, TcpConfig as Config};
use xdptcp::simulation::{run_transfer_from, DataSource, LinkConfig, TransferReport, TransferSpec};

#[derive(Parser)]
#[command(version, about = "Verified file transfer over the xdptcp stack")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Two stacks in this process over a simulated link (virtual clock).
    Sim(SimArgs),
    /// Our stack over AF_XDP against the Linux kernel, both directions,
    /// next to a kernel-to-kernel run (needs root: creates namespaces).
    Demo(DemoArgs),
    /// Send a file (or generated data) over AF_XDP to `file_transfer recv`
    /// (framed: length and digest, BLAKE3 by default, checked by the
    /// receiver, which confirms) or, with --raw, to any TCP peer. Prints
    /// the digest of what was sent.
    Send(SendArgs),
    /// Receive one transfer over AF_XDP into a file (framed, or --raw from
    /// any TCP peer). Prints the digest of what arrived (the sender's
    /// algorithm when framed, SHA-256 by default with --raw); the file
    /// appears only when all of it did (and, framed, its length and digest
    /// match).
    Recv(RecvArgs),
}

#[derive(Args)]
struct SendArgs {
    /// The file to send (or use --generate).
    file: Option<PathBuf>,
    /// Send this many bytes of generated data instead of a file (K/M/G).
    #[arg(long, value_parser = parse_size, conflicts_with = "file")]
    generate: Option<u64>,
    /// The receiver, IP:PORT.
    #[arg(long)]
    to: std::net::SocketAddr,
    /// Plain bytes, no header or digest: for socat, nc or any TCP receiver.
    #[arg(long)]
    raw: bool,
    /// The digest: blake3 (the default for framed transfers: SHA-256 costs
    /// a core at the line rate of jumbo frames) or sha256 (the default with
    /// --raw, to compare with `sha256sum` on the other end).
    #[arg(long, value_enum)]
    digest: Option<DigestAlg>,
    /// Print one JSON object as the last line: bytes, seconds, rate,
    /// digest and the RTT samples (percentiles and the histogram).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Args)]
struct RecvArgs {
    /// The port to listen on.
    #[arg(long)]
    port: u16,
    /// Where to write what arrives: a file (written under a temporary name
    /// beside it and renamed when complete), a device or FIFO (written
    /// directly, e.g. /dev/null), or - for standard output.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it is an existing file.
    #[arg(long)]
    force: bool,
    /// Plain bytes until the sender closes: for socat, nc or any TCP sender.
    #[arg(long)]
    raw: bool,
    /// With --raw, the digest computed and printed: sha256 (default, as
    /// `sha256sum`) or blake3. Framed transfers use the sender's.
    #[arg(long, value_enum)]
    digest: Option<DigestAlg>,
    /// Do not compute the digest of what arrives (computed by default and
    /// printed; framed transfers check it against the sender's). For
    /// benchmarking a --raw receiver; framed transfers need it.
    #[arg(long)]
    no_digest: bool,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Bytes to move in each direction (whole MiB).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    size: u64,
    /// Queues on our veth end, one core each (more than 1 uses driver-mode XDP).
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SimArgs {
    /// Bytes of generated data to send (K/M/G = KiB/MiB/GiB). Ignored with --file.
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    size: u64,
    /// Send this file instead of generated data.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Write the received bytes here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Probability that the link drops a frame.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    loss: f64,
    /// Probability that a frame is held back and overtaken.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    reorder: f64,
    /// Probability that a frame is delivered twice.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    dup: f64,
    /// Probability that one bit of a frame is flipped.
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    corrupt: f64,
    /// One-way delay in milliseconds.
    #[arg(long, default_value_t = 1.0)]
    delay_ms: f64,
    /// Extra random one-way delay, uniform in [0, jitter), in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Line rate in bit/s (K/M/G decimal).
    #[arg(long, default_value = "1G", value_parser = parse_rate)]
    bandwidth: u64,
    /// Bytes the link queues before it drops at the tail.
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    queue: u64,
    /// Minimum retransmission timeout in milliseconds (RFC 6298 says 1000;
    /// 200 as in Linux is the default, see docs/DEEP_DIVE.md).
    #[arg(long, default_value_t = 200)]
    min_rto_ms: u64,
    /// Congestion control: cubic (the default, as in Linux), newreno, or
    /// bbr (model-based and paced; see docs/DEEP_DIVE.md).
    #[arg(long, default_value = "cubic")]
    cc: Algorithm,
    /// Round-trip time of the link, e.g. `100ms` (sets the one-way delay to half).
    #[arg(long, value_parser = parse_duration)]
    rtt: Option<Duration>,
    /// Turn off selective acknowledgments (RFC 2018) on both stacks.
    #[arg(long)]
    no_sack: bool,
    /// Turn off timestamps (RFC 7323) on both stacks.
    #[arg(long)]
    no_timestamps: bool,
    /// Turn off window scaling (RFC 7323) on both stacks: windows stay below 64 KiB.
    #[arg(long)]
    no_window_scaling: bool,
    /// Fixed send and receive buffers of this size (no autotuning). By
    /// default they start at 256K and grow with the path's bandwidth-delay
    /// product up to --max-buffer.
    #[arg(long, value_parser = parse_size)]
    buffer: Option<u64>,
    /// The most autotuned buffers grow to.
    #[arg(long, default_value = "32M", value_parser = parse_size)]
    max_buffer: u64,
    /// Seed for the link's randomness and the generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    xdptcp_tools::shutdown::on_signal_clean_up("file_transfer");
    let cli = Cli::parse();
    match cli.mode {
        Mode::Sim(args) => exit(sim(&args)),
        Mode::Demo(args) => exit(demo(&args)),
        Mode::Send(args) => exit(send(&args)),
        Mode::Recv(args) => exit(recv(&args)),
    }
}

fn exit(r: Result<bool, String>) -> ExitCode {
    xdptcp_tools::shutdown::wait_if_signalled();
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("file_transfer: {e}");
            ExitCode::from(2)
        }
    }
}

fn millis(ms: f64, what: &str) -> Result<Duration, String> {
    if !(0.0..=60_000.0).contains(&ms) {
        return Err(format!("--{what} must be between 0 and 60000 ms"));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn demo(a: &DemoArgs) -> Result<bool, String> {
    use apps::kernel_demo::{kernel_to_kernel, kernel_to_ours, ours_to_kernel, DemoFile, Leg};
    use xdptcp_tools::topology::Topology;
    let mib = (a.size >> 20).max(1);
    println!("xdptcp over AF_XDP against the Linux kernel: a {mib} MiB file each way over veth");
    let file = DemoFile::create(mib << 20)?;
    let queues = a.queues.clamp(1, 16);
    let ours = Topology::create_with("d", 220, false, queues).map_err(|e| e.to_string())?;
    let reference = Topology::create("k", 221, true).map_err(|e| e.to_string())?;
    println!(
        "  namespaces {} (xdptcp {}) and {} (kernel {}); reference pair {} / {}",
        ours.ours,
        ours.our_ip(),
        ours.peer,
        ours.peer_ip(),
        reference.ours,
        reference.peer
    );
    // Namespaces are per thread: the AF_XDP work runs on its own thread.
    let legs = std::thread::scope(|s| {
        s.spawn(|| -> Result<Vec<Leg>, String> {
            let mut legs = Vec::new();
            ours.enter_ours()
                .map_err(|e| format!("entering namespace: {e}"))?;
            eprintln!("  running xdptcp -> kernel ({queues} core(s)) ...");
            legs.push(ours_to_kernel(&ours, queues, &file.0)?);
            eprintln!("  running kernel -> xdptcp ({queues} core(s)) ...");
            legs.push(kernel_to_ours(&ours, queues, &file.0)?);
            eprintln!("  running kernel -> kernel ...");
            legs.push(kernel_to_kernel(&reference, &file.0)?);
            Ok(legs)
        })
        .join()
        .map_err(|_| "the transfer thread panicked".to_string())?
    })?;
    drop(ours);
    drop(reference);
    let kernel = legs
        .iter()
        .find(|l| l.name == "kernel -> kernel")
        .map(|l| l.mbit_s());
    println!(
        "  {:<18} {:>9} {:>9} {:>11} {:>9}  sha256",
        "direction", "MiB", "seconds", "Mbit/s", "vs kernel"
    );
    for l in &legs {
        println!(
            "  {:<18} {:>9} {:>9.3} {:>11.1} {:>8.2}x  {}",
            l.name,
            l.bytes >> 20,
            l.seconds,
            l.mbit_s(),
            kernel.map_or(f64::NAN, |k| l.mbit_s() / k),
            if l.sha_match { "match" } else { "DIFFERS" }
        );
    }
    let ok = legs.iter().all(|l| l.sha_match);
    println!("  result     {}", if ok { "OK" } else { "FAILED" });
    if a.json {
        let mut j = JsonLine::new();
        j.bool("ok", ok).str("mode", "demo").u64("bytes", mib << 20);
        for l in &legs {
            let key = l.name.replace(" -> ", "_to_");
            j.f64(&format!("{key}_mbit_s"), l.mbit_s());
            j.bool(&format!("{key}_sha256_match"), l.sha_match);
        }
        println!("{}", j.finish());
    }
    Ok(ok)
}

/// Where the sender's bytes come from.
enum Source {
    Generated(DataSource),
    File(File),
}

fn sim(a: &SimArgs) -> Result<bool, String> {
    let (mut source, bytes, what) = match &a.file {
        Some(p) => {
            let f = File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
            let len = f
                .metadata()
                .map_err(|e| format!("cannot stat {}: {e}", p.display()))?
                .len();
            (Source::File(f), len, p.display().to_string())
        }
        None => (
            Source::Generated(DataSource::new(a.seed, a.size)),
            a.size,
            "generated data".to_string(),
        ),
    };
    let mut out = match &a.out {
        Some(p) => {
            Some(BufWriter::new(File::create(p).map_err(|e| {
                format!("cannot create {}: {e}", p.display())
            })?))
        }
        None => None,
    };
    let link = LinkConfig {
        loss: a.loss,
        duplicate: a.dup,
        reorder: a.reorder,
        corrupt: a.corrupt,
        delay: match a.rtt {
            Some(rtt) => rtt / 2,
            None => millis(a.delay_ms, "delay-ms")?,
        },
        jitter: millis(a.jitter_ms, "jitter-ms")?,
        bandwidth_bps: Some(a.bandwidth),
        queue_bytes: usize::try_from(a.queue).map_err(|_| "--queue is too large")?,
        ..LinkConfig::default()
    };
    let size = |v: u64, what: &str| {
        usize::try_from(v)
            .ok()
            .filter(|b| (4096..=1 << 30).contains(b))
            .ok_or(format!("--{what} must be between 4K and 1G"))
    };
    let (buffer, autotune) = match a.buffer {
        Some(b) => (size(b, "buffer")?, false),
        None => (256 * 1024, true),
    };
    let max_buffer = size(a.max_buffer, "max-buffer")?;
    let tcp = Config {
        min_rto: Duration::from_millis(a.min_rto_ms.max(1)),
        congestion: a.cc,
        sack: !a.no_sack,
        timestamps: !a.no_timestamps,
        window_scaling: !a.no_window_scaling,
        send_buffer: buffer,
        recv_buffer: buffer,
        autotune,
        max_buffer,
        ..Config::default()
    };
    let spec = TransferSpec {
        bytes,
        link: link.clone(),
        seed: a.seed,
        tcp,
        ..TransferSpec::default()
    };
    println!(
        "xdptcp file transfer (simulated link): {} of {what}",
        fmt_bytes(bytes)
    );
    println!(
        "  link: {} one-way delay {:.1} ms, loss {}, reorder {}, duplicate {}, corrupt {}, seed {}",
        fmt_rate(a.bandwidth as f64),
        link.delay.as_secs_f64() * 1e3,
        a.loss,
        a.reorder,
        a.dup,
        a.corrupt,
        a.seed
    );

    let (mut sent_hash, mut got_hash) = (Sha256::new(), Sha256::new());
    let mut io_error: Option<String> = None;
    let mut read_source = |buf: &mut [u8]| -> usize {
        let n = match &mut source {
            Source::Generated(g) => g.fill(buf),
            Source::File(f) => match read_full(f, buf) {
                Ok(n) => n,
                Err(e) => {
                    io_error.get_or_insert(format!("reading the file: {e}"));
                    0
                }
            },
        };
        sent_hash.update(&buf[..n]);
        n
    };
    let mut write_error: Option<String> = None;
    let mut on_received = |b: &[u8]| {
        got_hash.update(b);
        if let Some(w) = &mut out {
            if let Err(e) = w.write_all(b) {
                write_error.get_or_insert(format!("writing the output: {e}"));
            }
        }
    };
    let wall = std::time::Instant::now();
    let quiet = a.quiet;
    let mut last_shown = 0u64;
    let mut progress = |got: u64, now: xdptcp::api::Instant| {
        // About every 10% (and never more often than every MiB).
        if quiet || got < last_shown + (bytes / 10).max(1 << 20) {
            return;
        }
        last_shown = got;
        eprintln!(
            "  {:>10} / {} ({:3.0}%)  simulated {:7.3} s  wall {:6.2} s",
            fmt_bytes(got),
            fmt_bytes(bytes),
            100.0 * got as f64 / bytes.max(1) as f64,
            now.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
    };
    let r = run_transfer_from(&spec, &mut read_source, &mut on_received, &mut progress);
    let wall_s = wall.elapsed().as_secs_f64();
    if let Some(w) = &mut out {
        if let Err(e) = w.flush() {
            write_error.get_or_insert(format!("writing the output: {e}"));
        }
    }
    let sent_digest = hex(&sent_hash.finalize());
    let got_digest = hex(&got_hash.finalize());
    let sha_match = sent_digest == got_digest && r.bytes_received == bytes;
    let error = io_error.or(write_error).or(r.error.clone());
    let ok = r.completed && sha_match && error.is_none();
    let outcome = Outcome {
        r,
        bytes,
        digest: got_digest,
        sha_match,
        wall_s,
        ok,
        error,
    };
    summary(&outcome);
    if a.json {
        println!("{}", json(&outcome, a));
    }
    Ok(ok)
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn options(s: &xdptcp::api::ConnectionSnapshot) -> String {
    let mut o = Vec::new();
    if let Some((ours, theirs)) = s.window_scale {
        o.push(format!("window scale {ours}/{theirs}"));
    }
    if s.timestamps {
        o.push("timestamps".to_string());
    }
    if s.sack {
        o.push("SACK".to_string());
    }
    if o.is_empty() {
        "none".to_string()
    } else {
        o.join(", ")
    }
}

fn goodput_bps(r: &TransferReport) -> f64 {
    r.bytes_received as f64 * 8.0 / r.sim_time.as_secs_f64().max(1e-9)
}

/// What a run ended with, for the summary and the JSON line.
struct Outcome {
    r: TransferReport,
    bytes: u64,
    digest: String,
    sha_match: bool,
    wall_s: f64,
    ok: bool,
    error: Option<String>,
}

fn summary(o: &Outcome) {
    let Outcome {
        r,
        bytes,
        digest,
        sha_match,
        wall_s,
        ok,
        error,
    } = o;
    let (bytes, sha_match, ok) = (*bytes, *sha_match, *ok);
    let s = &r.sender;
    let c = &s.counters;
    println!(
        "  received   {} of {} (SHA-256 {})",
        fmt_bytes(r.bytes_received),
        fmt_bytes(bytes),
        if sha_match { "matches" } else { "DIFFERS" }
    );
    println!("  sha256     {digest}");
    println!(
        "  goodput    {} over {:.3} s of simulated time ({:.2} s wall)",
        fmt_rate(goodput_bps(r)),
        r.sim_time.as_secs_f64(),
        wall_s
    );
    println!(
        "  retransmits {} ({} fast, {} timeouts, {} resent), link dropped {} / corrupted {} frames",
        c.retransmits,
        c.fast_retransmits,
        c.rto_expirations,
        fmt_bytes(c.bytes_retransmitted),
        r.link_a_to_b.dropped_frames(),
        r.link_a_to_b.frames_corrupted
    );
    println!(
        "  recovery   {} SACK recoveries, {} tail loss probes, {} D-SACKs, {} spurious retransmits; options: {}",
        c.sack_recoveries,
        c.tail_loss_probes,
        c.dsacks_received,
        c.spurious_retransmits,
        options(s)
    );
    println!(
        "  sender     {} final cwnd {}, ssthresh {}, srtt {}, rto {:.0} ms",
        s.congestion,
        fmt_bytes(u64::from(s.cwnd)),
        if s.ssthresh == u32::MAX {
            "none (never lost)".to_string()
        } else {
            fmt_bytes(u64::from(s.ssthresh))
        },
        s.srtt
            .map(|d| format!("{:.3} ms", d.as_secs_f64() * 1e3))
            .unwrap_or_else(|| "unmeasured".into()),
        s.rto.as_secs_f64() * 1e3
    );
    match (ok, error) {
        (true, _) => println!("  result     OK"),
        (false, Some(e)) => println!("  result     FAILED: {e}"),
        (false, None) => println!("  result     FAILED"),
    }
}

fn json(o: &Outcome, a: &SimArgs) -> String {
    let r = &o.r;
    let s = &r.sender;
    let c = &s.counters;
    JsonLine::new()
        .bool("ok", o.ok)
        .str("mode", "sim")
        .u64("bytes", o.bytes)
        .u64("bytes_received", r.bytes_received)
        .bool("sha256_match", o.sha_match)
        .str("sha256", &o.digest)
        .u64("retransmits", c.retransmits)
        .u64("fast_retransmits", c.fast_retransmits)
        .u64("rto_expirations", c.rto_expirations)
        .u64("retransmitted_bytes", c.bytes_retransmitted)
        .u64("sack_recoveries", c.sack_recoveries)
        .u64("dsacks_received", c.dsacks_received)
        .u64("spurious_retransmits", c.spurious_retransmits)
        .u64("tail_loss_probes", c.tail_loss_probes)
        .u64("rack_lost_segments", c.rack_lost_segments)
        .u64("undone_recoveries", c.undone_recoveries)
        .u64("spurious_rtos", c.spurious_rtos)
        .u64("hystart_exits", c.hystart_exits)
        .u64("send_buffer", s.send_buffer as u64)
        .u64("receiver_recv_buffer", r.receiver.recv_buffer as u64)
        .str("cc", s.congestion)
        .f64("sim_seconds", r.sim_time.as_secs_f64())
        .f64("wall_seconds", o.wall_s)
        .f64("goodput_bps", goodput_bps(r))
        .u64("final_cwnd", u64::from(s.cwnd))
        .f64(
            "srtt_ms",
            s.srtt.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        )
        .u64("link_dropped_bytes", r.link_a_to_b.dropped_bytes())
        .u64("link_dropped_frames", r.link_a_to_b.dropped_frames())
        .u64("link_corrupted_frames", r.link_a_to_b.frames_corrupted)
        .f64("loss", a.loss)
        .f64("reorder", a.reorder)
        .f64("dup", a.dup)
        .f64("corrupt", a.corrupt)
        .u64("seed", a.seed)
        .opt_str("error", o.error.as_deref())
        .finish()
}

/// Waits for the transfer, printing progress (and counters with --stats)
/// about once a second; returns false on timeout.
/// On a terminal: a progress bar with rate and ETA (`total` known) or a
/// byte counter; otherwise a plain line a second.
fn watch<A: xdptcp::api::CoreApp>(
    rt: &xdptcp::api::Runtime<A>,
    n: &NetArgs,
    progress: &apps::stream::Progress,
    verb: &str,
    total: Option<u64>,
) -> bool {
    use std::io::IsTerminal;
    let start = std::time::Instant::now();
    let stats_every = n.stats.map(|s| Duration::from_secs_f64(s.max(0.1)));
    let mut last_stats = start;
    let mut last_bytes = 0u64;
    let bar = std::io::stderr().is_terminal().then(|| {
        let (bar, template) = match total {
            Some(t) => (
                indicatif::ProgressBar::new(t),
                "{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{msg} {spinner} {bytes} {binary_bytes_per_sec}",
            ),
        };
        let style = indicatif::ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(verb.to_string());
        bar
    });
    let tick = if bar.is_some() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let finished = rt.wait_done(n.timeout, tick, |rt| {
        let b = progress.bytes.load(std::sync::atomic::Ordering::Relaxed);
        match &bar {
            Some(bar) => bar.set_position(b),
            None => eprintln!(
                "  {verb} {} ({}/s)",
                fmt_bytes(b),
                fmt_bytes(b.saturating_sub(last_bytes))
            ),
        }
        last_bytes = b;
        if let Some(every) = stats_every {
            if last_stats.elapsed() >= every {
                last_stats = std::time::Instant::now();
                for s in rt.snapshot(Duration::from_millis(200)) {
                    eprintln!("  core {}: {}", s.core, s.counters);
                    for c in &s.connections {
                        let k = &c.tcp.counters;
                        eprintln!(
                            "    {}:{} <-> port {}: {:?}, cwnd {}, ssthresh {}, srtt {:.2} ms, {} retransmits ({} recoveries, {} RTOs, {} RACK-lost, {} undone), buffers {}/{}",
                            c.tuple.remote_ip,
                            c.tuple.remote_port,
                            c.tuple.local_port,
                            c.state,
                            fmt_bytes(c.tcp.cwnd as u64),
                            fmt_bytes(u64::from(c.tcp.ssthresh.min(1 << 30))),
                            c.tcp.srtt.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
                            k.retransmits,
                            k.sack_recoveries,
                            k.rto_expirations,
                            k.rack_lost_segments,
                            k.undone_recoveries,
                            fmt_bytes(c.tcp.send_buffer as u64),
                            fmt_bytes(c.tcp.recv_buffer as u64)
                        );
                    }
                }
            }
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    finished
}

fn report(verb: &str, peer: &str, out: &apps::stream::Outcome, secs: f64) {
    report_to(&mut std::io::stdout(), verb, peer, out, secs)
}

fn report_to(w: &mut dyn Write, verb: &str, peer: &str, out: &apps::stream::Outcome, secs: f64) {
    let _ = writeln!(
        w,
        "{verb} {} {peer} in {secs:.3} s: {}",
        fmt_bytes(out.bytes),
        fmt_rate(out.bytes as f64 * 8.0 / secs.max(1e-9))
    );
    let name = out.algorithm.map_or("digest", DigestAlg::name);
    let _ = writeln!(w, "{name} {}", out.digest);
}

fn send(a: &SendArgs) -> Result<bool, String> {
    use apps::stream::{Progress, SendApp};
    use std::sync::Arc;
    let (source, len): (Box<dyn Read + Send>, u64) = match (&a.file, a.generate) {
        (Some(p), None) => {
            let f = File::open(p).map_err(|e| format!("opening {}: {e}", p.display()))?;
            let len = f.metadata().map_err(|e| e.to_string())?.len();
            // Read straight into the sender's 256 KiB buffer: a BufReader
            // in between copied every byte once more (5 % of the rate).
            (Box::new(f), len)
        }
        (None, Some(n)) => (Box::new(DataSource::new(1, n)), n),
        _ => return Err("give a FILE to send or --generate SIZE".into()),
    };
    let progress = Arc::new(Progress::default());
    let mut source = Some(source);
    let rt = start_runtime(&a.net, |core| {
        xdptcp::api::percore::Dispatch::new(SendApp::new(
            a.to,
            if core == 0 { source.take() } else { None },
            (!a.raw).then_some(len),
            a.digest.unwrap_or(if a.raw {
                DigestAlg::Sha256
            } else {
                DigestAlg::Blake3
            }),
            progress.clone(),
        ))
    })?;
    let mode = rt.device_mode().map(|m| m.to_string()).unwrap_or_default();
    let start = std::time::Instant::now();
    let finished = watch(&rt, &a.net, &progress, "sent", Some(len));
    let secs = start.elapsed().as_secs_f64();
    let apps = rt.stop();
    if !finished {
        return Err(format!("timed out after {:?}", a.net.timeout));
    }
    let out = apps
        .into_iter()
        .find_map(|a| a.handler.outcome)
        .ok_or("no core ran the transfer")?;
    if let Some(e) = &out.error {
        return Err(e.clone());
    }
    // From the connection's establishment to the receiver's confirmation
    // (the wall clock since start also counts ARP and the handshake).
    let secs = out.secs.unwrap_or(secs);
    report("sent", &format!("to {}", a.to), &out, secs);
    if let Some(h) = out.rtt.as_ref().filter(|h| !h.is_empty()) {
        println!("{}", rtt_summary(h));
    }
    if a.json {
        println!("{}", send_json(&out, secs, &mode));
    }
    Ok(true)
}

const RTT_QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (1.0, "max"),
];

/// "rtt p50 85 us, p90 ..., max ... (N samples)".
fn rtt_summary(h: &hdrhistogram::Histogram<u64>) -> String {
    let parts: Vec<String> = RTT_QUANTILES
        .iter()
        .map(|(q, name)| format!("{name} {:.0} us", h.value_at_quantile(*q) as f64 / 1e3))
        .collect();
    format!(
        "rtt {} ({} samples, the latest of each application turn)",
        parts.join(", "),
        h.len()
    )
}

fn send_json(out: &apps::stream::Outcome, secs: f64, device_mode: &str) -> String {
    let mut j = JsonLine::new();
    j.str("device_mode", device_mode)
        .u64("bytes", out.bytes)
        .f64("seconds", secs)
        .f64("mbit_per_s", out.bytes as f64 * 8.0 / secs.max(1e-9) / 1e6)
        .str("digest", &out.digest);
    if let Some(h) = &out.rtt {
        let mut r = JsonLine::new();
        r.u64("samples", h.len());
        for (q, name) in RTT_QUANTILES {
            r.f64(&format!("{name}_us"), h.value_at_quantile(q) as f64 / 1e3);
        }
        // The histogram itself: [upper bound in us, samples] per bucket.
        let buckets: Vec<String> = h
            .iter_recorded()
            .map(|v| {
                format!(
                    "[{},{}]",
                    v.value_iterated_to() as f64 / 1e3,
                    v.count_at_value()
                )
            })
            .collect();
        r.raw("histogram", &format!("[{}]", buckets.join(",")));
        j.raw("rtt", &r.finish());
    }
    j.finish()
}

fn recv(a: &RecvArgs) -> Result<bool, String> {
    use apps::output::Output;
    use apps::stream::{Progress, RecvApp, SinkFactory};
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    if a.no_digest && !a.raw {
        return Err(
            "--no-digest needs --raw: the framed protocol's confirmation is the digest".into(),
        );
    }
    // Opened (and checked) before the stack starts.
    let output = Arc::new(Mutex::new(Output::open(&a.out, a.force)?));
    let to_stdout = output.lock().expect("not poisoned").is_stdout();
    let out2 = output.clone();
    let make_sink: SinkFactory = Arc::new(move || {
        out2.lock()
            .expect("not poisoned")
            .take_writer()
            .ok_or_else(|| std::io::Error::other("the output was already used"))
    });
    let progress = Arc::new(Progress::default());
    let claimed = Arc::new(AtomicBool::new(false));
    let rt = start_runtime(&a.net, |_| {
        xdptcp::api::percore::Dispatch::new(RecvApp::new(
            a.port,
            claimed.clone(),
            make_sink.clone(),
            !a.raw,
            (!a.no_digest).then(|| a.digest.unwrap_or(DigestAlg::Sha256)),
            progress.clone(),
        ))
    });
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            output.lock().expect("not poisoned").abandon();
            return Err(e);
        }
    };
    eprintln!("listening on port {} ...", a.port);
    let start = std::time::Instant::now();
    let finished = watch(&rt, &a.net, &progress, "received", None);
    let secs = start.elapsed().as_secs_f64();
    let apps = rt.stop();
    let out = apps.into_iter().find_map(|a| a.handler.outcome);
    let output = output.lock().expect("not poisoned");
    let result = match (finished, out) {
        (true, Some(out)) if out.error.is_none() => {
            output.commit()?;
            let line = format!("into {}", output.describe());
            if to_stdout {
                // Standard output carries the data: the report goes to stderr.
                report_to(&mut std::io::stderr(), "received", &line, &out, secs);
            } else {
                report_to(&mut std::io::stdout(), "received", &line, &out, secs);
            }
            return Ok(true);
        }
        (_, Some(apps::stream::Outcome { error: Some(e), .. })) => Err(e),
        _ => Err(format!("timed out after {:?}", a.net.timeout)),
    };
    output.abandon();
    result
}
