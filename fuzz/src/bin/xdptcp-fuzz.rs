//! Runs the fuzz targets for a bounded time with a seeded mutator.
//!
//!   xdptcp-fuzz [--target NAME|all] [--seconds N] [--seed S]
//!               [--corpus DIR] [--crashes DIR] [--replay FILE]
//!
//! Exits 1 on the first crash, after writing the input to the crashes
//! directory (default fuzz/crashes) and printing how to replay it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xdptcp_fuzz::mutate::{mutate, Rng};
use xdptcp_fuzz::targets::{self, Target};

const MAX_LEN: usize = 4096;

struct Args {
    target: String,
    seconds: f64,
    seed: u64,
    corpus: Option<PathBuf>,
    crashes: PathBuf,
    replay: Option<PathBuf>,
}

fn usage(e: &str) -> ! {
    eprintln!("xdptcp-fuzz: {e}");
    eprintln!("usage: xdptcp-fuzz [--target wire|iface|live|percore|all] [--seconds N] [--seed S] [--corpus DIR] [--crashes DIR] [--replay FILE]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        target: "all".into(),
        seconds: 10.0,
        seed: 1,
        corpus: None,
        crashes: PathBuf::from("fuzz/crashes"),
        replay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--target" => a.target = value(),
            "--seconds" => {
                a.seconds = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--seconds: a number"))
            }
            "--seed" => {
                a.seed = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--seed: an integer"))
            }
            "--corpus" => a.corpus = Some(value().into()),
            "--crashes" => a.crashes = value().into(),
            "--replay" => a.replay = Some(value().into()),
            "-h" | "--help" => usage("help"),
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    a
}

/// Seeds: the target's built-in ones plus every file under `corpus/NAME`.
fn corpus(name: &str, dir: Option<&Path>) -> Vec<Vec<u8>> {
    let mut seeds = targets::seeds(name);
    if let Some(dir) = dir {
        if let Ok(entries) = std::fs::read_dir(dir.join(name)) {
            seeds.extend(
                entries
                    .flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok()),
            );
        }
    }
    seeds
}

fn quiet_panics() {
    // One line per crash is enough; the input file says the rest.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
}

fn fuzz(name: &str, target: Target, args: &Args, budget: Duration) -> Result<u64, PathBuf> {
    let seeds = corpus(name, args.corpus.as_deref());
    let mut rng = Rng::new(args.seed ^ name.len() as u64);
    let start = Instant::now();
    let mut runs = 0u64;
    // Seeds unmutated first: they must pass as they are.
    let mut queue: Vec<Vec<u8>> = seeds.clone();
    loop {
        let input = queue.pop().unwrap_or_else(|| {
            let a = &seeds[rng.below(seeds.len())];
            let b = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, a, b, MAX_LEN)
        });
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            std::fs::create_dir_all(&args.crashes).ok();
            let path = args
                .crashes
                .join(format!("{name}-{:016x}.bin", rng.next_u64()));
            std::fs::write(&path, &input).ok();
            return Err(path);
        }
        runs += 1;
        if runs.is_multiple_of(64) && start.elapsed() >= budget {
            return Ok(runs);
        }
    }
}

fn main() {
    let args = parse_args();
    quiet_panics();
    if let Some(file) = &args.replay {
        let target = targets::by_name(&args.target)
            .unwrap_or_else(|| usage("--replay needs --target wire|iface|live|percore"));
        let data =
            std::fs::read(file).unwrap_or_else(|e| usage(&format!("{}: {e}", file.display())));
        let ok = std::panic::catch_unwind(|| target(&data)).is_ok();
        println!(
            "{}: {}",
            file.display(),
            if ok { "no crash" } else { "CRASH" }
        );
        std::process::exit(if ok { 0 } else { 1 });
    }
    let chosen: Vec<_> = targets::ALL
        .iter()
        .filter(|(n, _)| args.target == "all" || args.target == *n)
        .collect();
    if chosen.is_empty() {
        usage(&format!("no target '{}'", args.target));
    }
    let each = Duration::from_secs_f64(args.seconds.max(0.1) / chosen.len() as f64);
    for (name, target) in chosen {
        match fuzz(name, *target, &args, each) {
            Ok(runs) => println!(
                "{name}: {runs} inputs in {:.1} s, no crash",
                each.as_secs_f64()
            ),
            Err(path) => {
                eprintln!("{name}: CRASH, input saved to {}", path.display());
                eprintln!(
                    "replay: cargo run --release -p xdptcp-fuzz -- --target {name} --replay {}",
                    path.display()
                );
                eprintln!(
                    "then copy it to fuzz/regressions/{name}/ so the regression test keeps it"
                );
                std::process::exit(1);
            }
        }
    }
}
