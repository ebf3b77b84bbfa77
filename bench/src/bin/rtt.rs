//! Round-trip latency, xdptcp next to the Linux kernel, in one run.
//!
//! Two topologies (namespaces + veth): on one, a client on the kernel's
//! own TCP (`std::net::TcpStream`); on the other, the same client loop on
//! our stack over AF_XDP (`xdptcp::api::socket::TcpStream`). Both talk to
//! the same kind of server: a kernel echo (`std::net::TcpListener`) in the
//! peer namespace. Each round trip is recorded in an HDR histogram; the
//! percentiles are printed side by side with their ratio, written as
//! `.hgrm` percentile files (the HdrHistogram plotter's format) and drawn
//! as an SVG plot.
//!
//! Usage (root): rtt [--size BYTES] [--count N] [--out DIR] [--ipv6]
//! (`--ipv6`: both clients and the server over IPv6)

// The programs' allocator (see apps).
use apps as _;
use clap::Parser;
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use xdptcp_tools::topology::{Spec, Topology};

const PORT: u16 = 7100;
const QUANTILES: [f64; 6] = [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0];

/// Round-trip latency, xdptcp next to the Linux kernel, in one run (root).
#[derive(Parser)]
#[command(name = "rtt")]
struct Args {
    /// Request and response size, bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Round trips per client.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Where the percentile files and the plot go.
    #[arg(long, default_value = "target/bench")]
    out: String,
    /// Both clients and the server over IPv6.
    #[arg(long)]
    ipv6: bool,
}

fn main() {
    let args = Args::parse();
    xdptcp_tools::shutdown::on_signal_clean_up("rtt");
    if let Err(e) = run(args) {
        eprintln!("rtt: {e}");
        std::process::exit(2);
    }
}

fn run(args: Args) -> Result<(), String> {
    let Args {
        size,
        count,
        out,
        ipv6,
    } = args;
    if !xdptcp_tools::topology::is_root() {
        return Err("needs root (namespaces, AF_XDP): run with sudo".into());
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{out}: {e}"))?;
    println!("round trips of {size} B, {count} each, over veth between two namespaces");
    let path = |tag: &str, subnet: u8, kernel_both: bool| {
        let spec = Spec {
            subnet,
            kernel_both,
            ipv6,
            ..Spec::default()
        };
        Topology::create_spec(tag, spec).map_err(|e| e.to_string())
    };
    let kernel = path("rk", 233, true)?;
    let ours = path("rx", 234, false)?;
    let k = measure(&kernel, size, count, false, ipv6)?;
    let x = measure(&ours, size, count, true, ipv6)?;
    println!(
        "  {:>10} {:>12} {:>12} {:>8}",
        "percentile", "kernel us", "xdptcp us", "ratio"
    );
    for q in QUANTILES {
        let (a, b) = (k.value_at_quantile(q), x.value_at_quantile(q));
        println!(
            "  {:>10} {:>12.1} {:>12.1} {:>7.2}x",
            format!("{}", q * 100.0),
            a as f64 / 1e3,
            b as f64 / 1e3,
            b as f64 / a.max(1) as f64
        );
    }
    for (name, h) in [("kernel", &k), ("xdptcp", &x)] {
        let path = format!("{out}/rtt-{name}.hgrm");
        std::fs::write(&path, hgrm(h)).map_err(|e| format!("{path}: {e}"))?;
    }
    let svg = format!("{out}/rtt.svg");
    std::fs::write(
        &svg,
        plot(&[("kernel", &k, "#1f77b4"), ("xdptcp", &x, "#d62728")]),
    )
    .map_err(|e| format!("{svg}: {e}"))?;
    println!("  percentile files {out}/rtt-kernel.hgrm, {out}/rtt-xdptcp.hgrm; plot {svg}");
    Ok(())
}

/// An echo server on the kernel in the peer namespace, then `count` round
/// trips from our namespace on the kernel (`xdptcp` false) or on our stack.
fn measure(
    t: &Topology,
    size: usize,
    count: u64,
    xdptcp: bool,
    ipv6: bool,
) -> Result<Histogram<u64>, String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let peer = t.peer_addr(ipv6);
    let to = SocketAddr::new(peer, PORT);
    std::thread::scope(|s| {
        let server = s.spawn(move || -> std::io::Result<()> {
            t.enter_peer()?;
            let l = std::net::TcpListener::bind((peer, PORT))?;
            let _ = ready_tx.send(());
            let (mut c, _) = l.accept()?;
            c.set_nodelay(true)?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = c.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                c.write_all(&buf[..n])?;
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the echo server did not start")?;
        let client = s.spawn(move || -> Result<Histogram<u64>, String> {
            t.enter_ours().map_err(|e| e.to_string())?;
            let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("bounds");
            if xdptcp {
                let mut cfg = xdptcp::api::config::StackConfig::new(&t.dev, t.our_ip(), 24)
                    .map_err(|e| e.to_string())?;
                if ipv6 {
                    cfg = cfg.ipv6(t.our_ip6(), 64);
                }
                let stack = xdptcp::api::socket::Stack::start(cfg).map_err(|e| e.to_string())?;
                let mut c = xdptcp::api::socket::TcpStream::connect(&stack, to)
                    .map_err(|e| e.to_string())?;
                c.set_nodelay(true);
                round_trips(&mut c, size, count, &mut h)?;
            } else {
                let mut c = std::net::TcpStream::connect(to).map_err(|e| e.to_string())?;
                c.set_nodelay(true).map_err(|e| e.to_string())?;
                round_trips(&mut c, size, count, &mut h)?;
            }
            Ok(h)
        });
        let h = client.join().map_err(|_| "the client panicked")??;
        let _ = server.join();
        eprintln!(
            "  {}: {} round trips, p50 {:.1} us",
            if xdptcp { "xdptcp" } else { "kernel" },
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1e3
        );
        Ok(h)
    })
}

fn round_trips(
    c: &mut (impl Read + Write),
    size: usize,
    count: u64,
    h: &mut Histogram<u64>,
) -> Result<(), String> {
    let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut back = vec![0u8; size];
    // Warm-up: ARP, slow start, caches.
    for i in 0..count / 10 + count {
        let start = Instant::now();
        c.write_all(&msg).map_err(|e| e.to_string())?;
        c.read_exact(&mut back).map_err(|e| e.to_string())?;
        if i >= count / 10 {
            h.record(start.elapsed().as_nanos() as u64)
                .map_err(|e| e.to_string())?;
        }
        if back != msg {
            return Err("the echo differs".into());
        }
    }
    Ok(())
}

/// The HdrHistogram percentile distribution text format.
fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut total = 0;
    for v in h.iter_quantiles(1) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            f64::INFINITY
        };
        s += &format!(
            "{:12.3} {:2.12} {:10} {:14.2}\n",
            v.value_iterated_to() as f64 / 1e3,
            q,
            total,
            inv
        );
    }
    s += &format!(
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n",
        h.mean() / 1e3,
        h.stdev() / 1e3
    );
    s += &format!(
        "#[Max     = {:12.3}, Total count    = {:12}]\n",
        h.max() as f64 / 1e3,
        h.len()
    );
    s
}

/// Latency (log scale) against percentile on the usual 1/(1-q) axis.
fn plot(series: &[(&str, &Histogram<u64>, &str)]) -> String {
    let (w, hgt, left, bottom) = (720.0, 420.0, 70.0, 50.0);
    let max_us = series.iter().map(|s| s.1.max()).max().unwrap_or(1) as f64 / 1e3;
    let min_us = series.iter().map(|s| s.1.min()).min().unwrap_or(1).max(1) as f64 / 1e3;
    let (ly0, ly1) = (
        min_us.log10().floor(),
        max_us.log10().ceil().max(min_us.log10().floor() + 1.0),
    );
    let x_of = |q: f64| left + (1.0 / (1.0 - q.min(0.99999))).log10() / 5.0 * (w - left - 20.0);
    let y_of =
        |us: f64| hgt - bottom - (us.max(1e-3).log10() - ly0) / (ly1 - ly0) * (hgt - bottom - 20.0);
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{hgt}' font-family='sans-serif' font-size='12'>\n\
         <rect width='100%' height='100%' fill='white'/>\n"
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = left + i as f64 / 5.0 * (w - left - 20.0);
        svg += &format!("<line x1='{x}' y1='20' x2='{x}' y2='{}' stroke='#ddd'/><text x='{x}' y='{}' text-anchor='middle'>{label}</text>\n", hgt - bottom, hgt - bottom + 16.0);
    }
    let mut e = ly0;
    while e <= ly1 {
        let y = y_of(10f64.powf(e));
        svg += &format!("<line x1='{left}' y1='{y}' x2='{}' y2='{y}' stroke='#ddd'/><text x='{}' y='{}' text-anchor='end'>{} us</text>\n", w - 20.0, left - 6.0, y + 4.0, 10f64.powf(e));
        e += 1.0;
    }
    for (k, (name, h, color)) in series.iter().enumerate() {
        let pts: Vec<String> = h
            .iter_quantiles(5)
            .map(|v| {
                format!(
                    "{:.1},{:.1}",
                    x_of(v.quantile_iterated_to()),
                    y_of(v.value_iterated_to() as f64 / 1e3)
                )
            })
            .collect();
        svg += &format!(
            "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>\n",
            pts.join(" ")
        );
        svg += &format!(
            "<text x='{}' y='{}' fill='{color}'>{name}</text>\n",
            left + 10.0,
            36.0 + 16.0 * k as f64
        );
    }
    svg += &format!(
        "<text x='{}' y='{}' text-anchor='middle'>percentile</text>\n",
        (w + left) / 2.0,
        hgt - 10.0
    );
    svg + "</svg>\n"
}
