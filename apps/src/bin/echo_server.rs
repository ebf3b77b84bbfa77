//! Echoes every byte back, on the per-core API over AF_XDP (one core per
//! queue; each core serves the flows steered to it).

use apps::cli::{start_runtime, NetArgs};
use apps::echo::EchoServer;
use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xdptcp::api::percore::Dispatch;

#[derive(Parser)]
#[command(version, about = "TCP echo server on xdptcp (AF_XDP, per-core API)")]
struct Cli {
    /// Port to listen on.
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Exit after serving this many connections (default: serve until --timeout).
    #[arg(long, default_value_t = 0)]
    max_conns: usize,
    #[command(flatten)]
    net: NetArgs,
}

fn main() -> ExitCode {
    xdptcp_tools::shutdown::on_signal_clean_up("echo_server");
    let cli = Cli::parse();
    let served = Arc::new(AtomicUsize::new(0));
    let rt = match start_runtime(&cli.net, |_| {
        Dispatch::new(EchoServer {
            port: cli.port,
            served: served.clone(),
            max_conns: cli.max_conns,
            errors: Vec::new(),
            bytes: 0,
        })
    }) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo_server: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "echo_server: listening on port {} of {} ({} core(s))",
        cli.port,
        cli.net.ip.join(" "),
        rt.cores()
    );
    let stats = cli.net.stats.map(Duration::from_secs_f64);
    let finished = rt.wait_done(
        cli.net.timeout,
        stats.unwrap_or(Duration::from_secs(3600)),
        |rt| {
            for (i, c) in rt.counters().iter().enumerate() {
                eprintln!("  core {i}: {c}");
            }
        },
    );
    let apps = rt.stop();
    let bytes: u64 = apps.iter().map(|a| a.handler.bytes).sum();
    let errors: Vec<_> = apps.iter().flat_map(|a| a.handler.errors.iter()).collect();
    println!(
        "served {} connection(s), echoed {bytes} bytes",
        served.load(Ordering::Relaxed)
    );
    for e in &errors {
        eprintln!("echo_server: {e}");
    }
    if !finished && cli.max_conns > 0 {
        eprintln!("echo_server: timed out after {:?}", cli.net.timeout);
        return ExitCode::FAILURE;
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
