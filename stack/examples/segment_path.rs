//! Pushes N MSS segments through the sans-IO path (a builds, b parses,
//! delivers and ACKs, the application reads, a takes the ACK): the program
//! `tools/callgrind.sh` counts instructions of, per segment.
//!
//! Usage: segment_path [N]   (default 100000)

#[path = "../benches/common/pair.rs"]
mod pair;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut p = pair::Pair::established();
    let data = vec![0x5au8; pair::MSS];
    for _ in 0..n {
        p.one_segment(&data);
    }
    let got = p.b.counters().bytes_received;
    assert_eq!(got, n * pair::MSS as u64, "every byte delivered");
    println!("{n} segments, {got} bytes delivered");
}
