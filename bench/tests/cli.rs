//! The focused benchmark programs answer `--help` with their usage and
//! refuse what they do not know, before they build anything: each one
//! otherwise creates namespaces and runs for minutes (as root) or stops
//! at the root check (not root), neither of which a user asking for help
//! wants. Runs as any user.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PROGRAMS: [(&str, &str); 3] = [
    ("lossy", env!("CARGO_BIN_EXE_lossy")),
    ("rtt", env!("CARGO_BIN_EXE_rtt")),
    ("synflood", env!("CARGO_BIN_EXE_synflood")),
];

/// Runs `bin args`, killed if it is still running after 10 s (a program
/// that ignored the flag and started its benchmark).
fn run(bin: &str, args: &[&str]) -> Result<Output, String> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    let start = Instant::now();
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            // SIGTERM, so the programs' own handlers take down what they
            // built; then collect it.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            return Err(format!("{bin} {args:?}: still running after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().map_err(|e| e.to_string())
}

#[test]
fn help_prints_the_usage_and_runs_nothing() {
    for (name, bin) in PROGRAMS {
        let out = run(bin, &["--help"]).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help: {:?}", out.status);
        assert!(
            text.contains("Usage:"),
            "{name} --help printed no usage: {text}"
        );
        assert!(
            !text.contains("Mbit/s") && !text.contains("round trips of"),
            "{name} --help ran the benchmark: {text}"
        );
    }
}

#[test]
fn an_unknown_flag_is_refused_with_a_message() {
    for (name, bin) in PROGRAMS {
        let out = run(bin, &["--no-such-flag"]).unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains("--no-such-flag"),
            "{name} did not name the flag it refused: {err}"
        );
    }
}

/// `lossy --poll` takes the stack's two modes and refuses anything else
/// before building the path, naming the modes it knows.
#[test]
fn lossy_refuses_an_unknown_poll_mode() {
    let out = run(PROGRAMS[0].1, &["--poll", "sideways"]).unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("busy or adaptive"), "{err}");
}

/// `lossy --api` takes our two APIs and refuses anything else before
/// building the path, naming them.
#[test]
fn lossy_refuses_an_unknown_api() {
    let out = run(PROGRAMS[0].1, &["--api", "carrier-pigeon"]).unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("socket") && err.contains("percore"), "{err}");
}
