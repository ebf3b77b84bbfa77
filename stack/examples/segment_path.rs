//! Pushes N MSS segments through the sans-IO path (a builds, b parses,
//! delivers and ACKs, the application reads, a takes the ACK): the program
//! `tools/callgrind.sh` counts instructions of, per segment.
//!
//! Usage: segment_path [N] [BATCH] [owned]   (default 100000 segments,
//! one per batch: every segment acknowledged; with BATCH = 16, as in bulk
//! since the receiver acknowledges once per received batch; `owned`: each
//! batch's bytes handed over as one chunk, not copied into the send ring)

#[path = "../benches/common/pair.rs"]
mod pair;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let batch: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut p = if batch == 1 {
        pair::Pair::established()
    } else {
        pair::Pair::established_with(xdptcp::tcp::UnsentLimit::Off)
    };
    let owned = std::env::args().nth(3).is_some_and(|a| a == "owned");
    let data = vec![0x5au8; pair::MSS];
    for _ in 0..n / batch {
        if owned {
            p.batch_owned(&data, batch as usize);
        } else {
            p.batch(&data, batch as usize);
        }
    }
    let n = n / batch * batch;
    let got = p.b.counters().bytes_received;
    assert_eq!(got, n * pair::MSS as u64, "every byte delivered");
    println!("{n} segments, {got} bytes delivered");
}
