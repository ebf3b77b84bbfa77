//! Chunks handed over whole (`Connection::send_owned`) arrive intact and
//! in order among copied writes, also when segments are lost and sent
//! again from the chunks, and every chunk comes back unchanged.

mod common;

use common::*;
use std::time::Duration;
use xdptcp::tcp::{Config, TcpError};

#[test]
fn owned_chunks_and_copies_arrive_in_order_through_loss_and_come_back() {
    let mut p = pair(Config::default(), 1000, Config::default(), 5000, 5);
    let mut n = 0u64;
    // Every 29th data segment from a is lost: resends read the chunks.
    p.drop = Box::new(move |t, from_a| {
        n += 1;
        from_a && t.payload_len > 0 && n.is_multiple_of(29)
    });
    let total = 3 << 20;
    let (mut sent, mut got) = (0usize, 0usize);
    let (mut handed, mut back) = (0usize, 0usize);
    let mut buf = vec![0u8; 64 * 1024];
    let mut turn = 0usize;
    // Where each chunk handed over began, by its allocation.
    let mut starts = std::collections::HashMap::new();
    let done = p.run(Duration::from_secs(60), |p| {
        while sent < total {
            turn += 1;
            // Chunks of varied sizes (some short enough to be copied),
            // every third write a copy of an odd length.
            let len = [1000, 2048, 7001, 16384, 65536, 333][turn % 6].min(total - sent);
            let bytes: Vec<u8> = (sent..sent + len).map(pattern).collect();
            if turn.is_multiple_of(3) {
                match p.a.send(&bytes) {
                    Ok(k) => sent += k,
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("send: {e}"),
                }
            } else {
                let key = bytes.as_ptr() as usize;
                match p.a.send_owned(bytes) {
                    Ok(()) => {
                        starts.insert(key, sent);
                        sent += len;
                        handed += 1;
                    }
                    Err((TcpError::WouldBlock, _)) => break,
                    Err((e, _)) => panic!("send_owned: {e}"),
                }
            }
        }
        while let Some(v) = p.a.reclaim() {
            unchanged(&mut starts, &v);
            back += 1;
        }
        got += read_checked(&mut p.b, &mut buf, got);
        got == total
    });
    assert!(done, "moved {got} of {total} bytes");
    assert!(
        p.log
            .iter()
            .filter(|(_, a, t)| *a && t.payload_len > 0)
            .count()
            > total / 1448 + 20,
        "segments were resent"
    );
    // The last ACK may still be on the way: let it arrive.
    p.run(Duration::from_secs(1), |p| p.a.send_queue() == 0);
    while let Some(v) = p.a.reclaim() {
        unchanged(&mut starts, &v);
        back += 1;
    }
    assert_eq!(back, handed, "every chunk handed over came back");
}

/// A chunk given back holds the bytes it was handed over with (short
/// ones were copied and given back at once).
fn unchanged(starts: &mut std::collections::HashMap<usize, usize>, v: &[u8]) {
    let start = starts
        .remove(&(v.as_ptr() as usize))
        .expect("a chunk handed over, given back once");
    let want: Vec<u8> = (start..start + v.len()).map(pattern).collect();
    assert!(v == want, "the chunk from byte {start} changed");
}
