//! The impairment forwarder (`impair.rs`) as a program, for a bridged
//! middle namespace (`xdptcp-topology up NAME --middle --bridge`):
//!
//!   ip netns exec NAMEm xdptcp-impair --a NAMEm0 --b NAMEm1 \
//!       [--loss P] [--dup P] [--reorder P] [--corrupt P] [--delay-ms N]
//!       [--rate-mbit N] [--seed S] [--seconds N]
//!
//! Probabilities apply to each IPv4 frame in each direction. Prints what
//! it did every second on stderr; runs until killed or for --seconds.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use xdptcp_tools::impair::{forward, Impairments, Stats};

fn usage(e: &str) -> ! {
    eprintln!("xdptcp-impair: {e}");
    eprintln!("usage: xdptcp-impair --a IF --b IF [--loss P] [--dup P] [--reorder P] [--corrupt P] [--delay-ms N] [--rate-mbit N] [--seed S] [--seconds N]");
    std::process::exit(2);
}

fn main() {
    xdptcp_tools::shutdown::on_signal_clean_up("xdptcp-impair");
    let mut imp = Impairments {
        seed: 1,
        ..Default::default()
    };
    let (mut a, mut b, mut seconds) = (None, None, None::<f64>);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let p = || -> f64 {
            v.parse()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .unwrap_or_else(|| usage(&format!("{flag}: a probability from 0 to 1")))
        };
        let n = || -> f64 {
            v.parse()
                .ok()
                .filter(|n: &f64| *n >= 0.0)
                .unwrap_or_else(|| usage(&format!("{flag}: a number")))
        };
        match flag.as_str() {
            "--a" => a = Some(v.clone()),
            "--b" => b = Some(v.clone()),
            "--loss" => imp.loss = p(),
            "--dup" => imp.duplicate = p(),
            "--reorder" => imp.reorder = p(),
            "--corrupt" => imp.corrupt = p(),
            "--delay-ms" => imp.delay = Duration::from_secs_f64(n() / 1000.0),
            "--rate-mbit" => imp.rate = Some((n() * 1e6) as u64),
            "--seed" => imp.seed = n() as u64,
            "--seconds" => seconds = Some(n()),
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    let (Some(a), Some(b)) = (a, b) else {
        usage("--a and --b name the two interfaces")
    };
    let stop = AtomicBool::new(false);
    let stats = Stats::default();
    let start = Instant::now();
    std::thread::scope(|s| {
        let worker = s.spawn(|| forward(&a, &b, imp, &stop, &stats));
        loop {
            std::thread::sleep(Duration::from_secs(1));
            eprintln!("xdptcp-impair: {stats}");
            if worker.is_finished() || seconds.is_some_and(|n| start.elapsed().as_secs_f64() >= n) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
        }
        if let Err(e) = worker.join().expect("the forwarder thread") {
            eprintln!("xdptcp-impair: {e} (run it inside the bridged middle namespace, as root)");
            std::process::exit(1);
        }
    });
}
