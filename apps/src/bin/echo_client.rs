//! Sends messages to an echo server and checks each reply byte for byte,
//! from our stack over AF_XDP (per-core API), and prints round-trip
//! latency percentiles from an HDR histogram.

use apps::cli::{start_runtime, NetArgs};
use apps::echo::EchoClient;
use apps::units::{fmt_bytes, fmt_rate, parse_size};
use clap::Parser;
use std::process::ExitCode;
use xdptcp::api::percore::Dispatch;

#[derive(Parser)]
#[command(version, about = "TCP echo client on xdptcp (AF_XDP, per-core API)")]
struct Cli {
    /// The echo server, IP:PORT.
    #[arg(long)]
    to: std::net::SocketAddr,
    /// Bytes per message (K/M = KiB/MiB), 1 B to 1 GiB.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    size: u64,
    /// Messages per connection, each sent after the previous reply.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Connections, spread over the cores.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    #[command(flatten)]
    net: NetArgs,
}

fn main() -> ExitCode {
    xdptcp_tools::shutdown::on_signal_clean_up("echo_client");
    let cli = Cli::parse();
    if cli.size == 0 || cli.size > 1 << 30 || cli.count == 0 || cli.conns == 0 {
        eprintln!("echo_client: --size must be 1 B..1 GiB, --count and --conns at least 1");
        return ExitCode::from(2);
    }
    let size = cli.size as usize;
    let start = std::time::Instant::now();
    let rt = match start_runtime(&cli.net, |_| {
        Dispatch::new(EchoClient::new(cli.to, size, cli.count, cli.conns))
    }) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo_client: {e}");
            return ExitCode::from(2);
        }
    };
    let finished = rt.wait_done(
        cli.net.timeout,
        std::time::Duration::from_secs(3600),
        |_| {},
    );
    let secs = start.elapsed().as_secs_f64();
    let apps = rt.stop();
    let mut latency = apps[0].handler.latency.clone();
    for a in &apps[1..] {
        latency.add(&a.handler.latency).expect("same bounds");
    }
    let errors: Vec<_> = apps.iter().flat_map(|a| a.handler.errors.iter()).collect();
    let rounds = latency.len();
    let bytes = rounds * cli.size * 2;
    println!(
        "{rounds} messages of {} on {} connection(s) to {}: {} echoed in {secs:.2} s ({})",
        fmt_bytes(cli.size),
        cli.conns,
        cli.to,
        fmt_bytes(bytes),
        fmt_rate(bytes as f64 * 8.0 / secs)
    );
    if rounds > 0 {
        let us = |q: f64| latency.value_at_quantile(q) as f64 / 1e3;
        println!(
            "round trip (us): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            us(0.5),
            us(0.9),
            us(0.99),
            us(0.999),
            latency.max() as f64 / 1e3
        );
    }
    for e in &errors {
        eprintln!("echo_client: {e}");
    }
    let all = rounds == cli.count as u64 * cli.conns as u64;
    if !finished {
        eprintln!("echo_client: timed out after {:?}", cli.net.timeout);
    }
    if finished && errors.is_empty() && all {
        println!("result OK: every reply matched");
        ExitCode::SUCCESS
    } else {
        println!("result FAILED");
        ExitCode::FAILURE
    }
}
