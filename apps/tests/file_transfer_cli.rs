//! The file_transfer program as a user runs it: exit codes, the JSON
//! summary line, and byte-exact files.

use sha2::{Digest, Sha256};
use std::process::{Command, Output};
use xdptcp::simulation::DataSource;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_file_transfer"))
        .args(args)
        .output()
        .expect("file_transfer runs")
}

fn last_line(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines().last().unwrap_or_default().to_string()
}

fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"')
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn impaired_transfer_succeeds_and_reports_json() {
    let o = run(&[
        "sim",
        "--size",
        "4M",
        "--loss",
        "0.05",
        "--reorder",
        "0.05",
        "--dup",
        "0.02",
        "--corrupt",
        "0.001",
        "--seed",
        "3",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let j = last_line(&o);
    assert_eq!(field(&j, "ok"), "true");
    assert_eq!(field(&j, "sha256_match"), "true");
    assert_eq!(field(&j, "bytes"), "4194304");
    assert!(
        field(&j, "retransmits").parse::<u64>().unwrap() > 0,
        "5% loss needs retransmits"
    );
    assert!(field(&j, "sim_seconds").parse::<f64>().unwrap() > 0.0);
    assert!(field(&j, "wall_seconds").parse::<f64>().is_ok());
    // The digest printed is that of the data the program generates.
    let mut data = vec![0u8; 4 << 20];
    assert_eq!(DataSource::new(3, 4 << 20).fill(&mut data), 4 << 20);
    assert_eq!(field(&j, "sha256"), hex(&Sha256::digest(&data)));
    let text = String::from_utf8_lossy(&o.stdout);
    for part in [
        "goodput",
        "retransmits",
        "final cwnd",
        "srtt",
        "result     OK",
    ] {
        assert!(text.contains(part), "summary shows {part}: {text}");
    }
}

#[test]
fn a_file_arrives_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("xdptcp-ft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, dst) = (dir.join("in.bin"), dir.join("out.bin"));
    let mut content = vec![0u8; 3 * 1000 * 1000 + 17];
    DataSource::new(99, content.len() as u64).fill(&mut content);
    std::fs::write(&src, &content).unwrap();
    let o = run(&[
        "sim",
        "--file",
        src.to_str().unwrap(),
        "--out",
        dst.to_str().unwrap(),
        "--loss",
        "0.02",
        "--json",
        "--quiet",
    ]);
    let got = std::fs::read(&dst);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(got.unwrap() == content, "output file differs from input");
}

#[test]
fn a_dead_link_fails_with_a_clear_error_and_exit_code() {
    let o = run(&["sim", "--size", "64K", "--loss", "1", "--json", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    let j = last_line(&o);
    assert_eq!(field(&j, "ok"), "false");
    assert_eq!(field(&j, "sha256_match"), "false");
    // Nothing answers ARP, so the connect fails as on Linux: EHOSTUNREACH.
    assert!(field(&j, "error").contains("no route to host"), "{j}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAILED"));
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let o = run(&["sim", "--loss", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("probability"));
    let o = run(&["sim", "--size", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a size"));
    let o = run(&["sim", "--file", "/nonexistent/xdptcp-test-file"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot open"));
    let o = run(&["sim", "--cc", "bbr"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown congestion control"));
}

#[test]
fn path_and_stack_options_are_applied() {
    let o = run(&[
        "sim",
        "--size",
        "1M",
        "--rtt",
        "40ms",
        "--bandwidth",
        "100mbit",
        "--cc",
        "newreno",
        "--no-sack",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let j = last_line(&o);
    assert_eq!(field(&j, "cc"), "newreno");
    assert_eq!(field(&j, "sack_recoveries"), "0");
    // A 40 ms RTT shows in the measured smoothed RTT.
    let srtt: f64 = field(&j, "srtt_ms").parse().unwrap();
    assert!((40.0..60.0).contains(&srtt), "srtt {srtt} ms");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("options: window scale"), "{text}");
    assert!(!text.contains("SACK\n"), "SACK is off");
    let o = run(&["sim", "--rtt", "soon"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Needs root (namespaces, AF_XDP); CI runs as root.
#[test]
fn demo_moves_verified_data_both_ways_against_the_kernel() {
    if !xdptcp_tools::topology::is_root() {
        eprintln!(
            "\n*** SKIPPED demo test: needs root for namespaces and AF_XDP (CI runs as root) ***\n"
        );
        return;
    }
    let o = run(&["demo", "--size", "16M", "--json"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let j = last_line(&o);
    for leg in ["xdptcp_to_kernel", "kernel_to_xdptcp", "kernel_to_kernel"] {
        assert_eq!(field(&j, &format!("{leg}_sha256_match")), "true", "{j}");
        let mbit: f64 = field(&j, &format!("{leg}_mbit_s")).parse().unwrap();
        assert!(mbit > 1.0, "{leg}: {mbit} Mbit/s");
    }
}
