//! The TCP scenarios, each written once over `Bed`, so the three pairings
//! run exactly the same code: bulk, latency during bulk, request/response
//! (rr) and connect/request/response/close (crr). Each has a client half
//! here and a server half (`*_server`) that `Bed::with_server` runs as a
//! job at the server end (`job.rs`).

use crate::bed::{Bed, KernelSocket, Stream};
use crate::cpu::CpuMeter;
use crate::job::{Job, Outcome, Serving, Stamps};
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Goodput of `flows` parallel streams for `dur`, timed at the receiver.
#[derive(Debug, Clone, Copy)]
pub struct Bulk {
    pub mbit: f64,
    pub bytes: u64,
    pub secs: f64,
    /// CPU seconds (all CPUs, both sides and the kernel) per GB moved.
    pub cpu_s_per_gb: f64,
}

/// `upload`: client to server; else server to client.
pub fn bulk(
    bed: &Bed,
    flows: usize,
    upload: bool,
    dur: Duration,
    port: u16,
) -> Result<Bulk, String> {
    let cpu = CpuMeter::start();
    let start = std::sync::OnceLock::<Instant>::new();
    let job = Job::KernelBulk {
        port,
        flows,
        send_for: (!upload).then_some(dur),
    };
    let (client, server) = bed.with_server(job, |_| {
        let streams: Vec<_> = (0..flows)
            .map(|_| {
                bed.connect(port, KernelSocket::Big)
                    .map_err(|e| format!("connect: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let _ = start.set(Instant::now());
        pump_all(streams, upload, dur, &start)
    })?;
    let start = *start.get().ok_or("never started")?;
    let sent: u64 = client.iter().map(|r| r.0).sum();
    // The receiver's count and its last end of stream; across hosts the
    // client's clock ends an upload when the server's end of stream
    // arrives (half a round trip after the receiver's end).
    let client_end = client
        .iter()
        .map(|r| r.1)
        .max()
        .unwrap_or_else(Instant::now);
    let (bytes, end) = if upload {
        if server.bytes != sent {
            return Err(format!("{sent} bytes sent, {} received", server.bytes));
        }
        (server.bytes, server.end.unwrap_or(client_end))
    } else {
        (sent, client_end)
    };
    let secs = (end - start).as_secs_f64();
    // On one machine the meter saw both ends; across hosts add the
    // server's.
    let remote_cpu = if bed.is_remote() { server.cpu_s } else { 0.0 };
    let cpu_secs = cpu.busy_seconds() + remote_cpu;
    Ok(Bulk {
        mbit: bytes as f64 * 8.0 / secs / 1e6,
        bytes,
        secs,
        cpu_s_per_gb: cpu_secs / (bytes as f64 / 1e9).max(1e-9),
    })
}

/// The server half of `bulk`.
pub fn bulk_server(
    s: &Serving<'_>,
    port: u16,
    flows: usize,
    send_for: Option<Duration>,
) -> Result<Outcome, String> {
    let l = s.listen(port)?;
    let streams: Vec<_> = (0..flows)
        .map(|_| s.accept(&l, KernelSocket::Big))
        .collect::<Result<_, _>>()?;
    let start = std::sync::OnceLock::new();
    let _ = start.set(Instant::now());
    let ends = pump_all(
        streams,
        send_for.is_some(),
        send_for.unwrap_or_default(),
        &start,
    )?;
    Ok(Outcome {
        bytes: ends.iter().map(|r| r.0).sum(),
        end: ends.iter().map(|r| r.1).max(),
        ..Outcome::default()
    })
}

/// Every stream pumped on a thread of its own (see `pump`).
fn pump_all(
    streams: Vec<Box<dyn Stream>>,
    send: bool,
    dur: Duration,
    start: &std::sync::OnceLock<Instant>,
) -> Result<Vec<(u64, Instant)>, String> {
    std::thread::scope(|s| {
        let hs: Vec<_> = streams
            .into_iter()
            .map(|mut c| s.spawn(move || pump(&mut *c, send, dur, start)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| "a flow panicked".to_string())?)
            .collect()
    })
}

/// Sends for `dur` then closes (`send`), or reads to the end. Returns the
/// bytes moved and when it ended.
fn pump(
    c: &mut dyn Stream,
    send: bool,
    dur: Duration,
    start: &std::sync::OnceLock<Instant>,
) -> Result<(u64, Instant), String> {
    let mut buf = vec![0x5au8; 256 * 1024];
    let mut total = 0u64;
    if send {
        let t0 = *start.wait();
        while t0.elapsed() < dur {
            c.write_all(&buf).map_err(|e| format!("write: {e}"))?;
            total += buf.len() as u64;
        }
        c.finish().map_err(|e| format!("shutdown: {e}"))?;
        // Wait for the peer's end of stream, so nothing is cut off.
        while c.read(&mut buf).map_err(|e| format!("read: {e}"))? > 0 {}
        return Ok((total, Instant::now()));
    }
    loop {
        let n = c.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            let end = Instant::now();
            c.finish().map_err(|e| format!("shutdown: {e}"))?;
            return Ok((total, end));
        }
        total += n as u64;
    }
}

/// Latency during bulk: each 64 KiB chunk carries the time it was handed
/// to `write`; the receiver records when it has the whole chunk. On one
/// machine both halves read one clock; across hosts the receiver maps the
/// stamps to its clock with the offset the control connection measured
/// (`control.rs`; its uncertainty is in the report's machine facts). With
/// our client, its cwnd and smoothed RTT every 10 ms as well.
pub struct BulkLatency {
    pub chunks: Histogram<u64>,
    pub mbit: f64,
    /// (seconds since start, cwnd bytes, srtt us) of our sender.
    pub trace: Vec<(f64, u32, f64)>,
}

const CHUNK: usize = 64 * 1024;

pub fn bulk_latency(
    bed: &Bed,
    dur: Duration,
    port: u16,
    how: KernelSocket,
) -> Result<BulkLatency, String> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let base = bed.base;
    let job = Job::KernelChunks {
        port,
        how,
        stamps: bed.stamps(),
    };
    let (trace, server) = bed.with_server(job, |_| {
        let mut c = bed.connect(port, how).map_err(|e| e.to_string())?;
        std::thread::scope(|s| {
            let stop = &stop;
            let tracer = s.spawn(move || {
                let mut trace = Vec::new();
                let Some(stack) = bed.client_stack() else {
                    return trace;
                };
                let t0 = Instant::now();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for core in stack.runtime().snapshot(Duration::from_millis(100)) {
                        for conn in core.connections {
                            if conn.tuple.remote_port == port {
                                let srtt = conn.tcp.srtt.map_or(0.0, |d| d.as_secs_f64() * 1e6);
                                trace.push((t0.elapsed().as_secs_f64(), conn.tcp.cwnd, srtt));
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                trace
            });
            let mut chunk = vec![0xa5u8; CHUNK];
            let t0 = Instant::now();
            let mut send = || -> Result<(), String> {
                while t0.elapsed() < dur {
                    let now = base.elapsed().as_nanos() as u64;
                    chunk[..8].copy_from_slice(&now.to_le_bytes());
                    c.write_all(&chunk).map_err(|e| format!("write: {e}"))?;
                }
                c.finish().map_err(|e| e.to_string())?;
                let mut b = [0u8; 16];
                while c.read(&mut b).map_err(|e| e.to_string())? > 0 {}
                Ok(())
            };
            let sent = send();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let trace = tracer.join().unwrap_or_default();
            sent.map(|_| trace)
        })
    })?;
    Ok(BulkLatency {
        chunks: server.latency.ok_or("the receiver recorded no latency")?,
        mbit: server.bytes as f64 * 8.0 / server.secs.max(1e-9) / 1e6,
        trace,
    })
}

/// The server half of `bulk_latency`: reads the chunks to the end.
pub fn chunks_server(
    s: &Serving<'_>,
    port: u16,
    how: KernelSocket,
    stamps: Stamps,
) -> Result<Outcome, String> {
    let origin = stamps.origin(s.base);
    let mut c = s.accept(&s.listen(port)?, how)?;
    let mut h = histogram();
    let mut chunk = vec![0u8; CHUNK];
    let (mut bytes, t0) = (0u64, Instant::now());
    loop {
        match c.read_exact(&mut chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("read: {e}")),
        }
        let sent = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
        let now = Instant::now().saturating_duration_since(origin).as_nanos() as u64;
        h.record(now.saturating_sub(sent).max(1))
            .map_err(|e| e.to_string())?;
        bytes += CHUNK as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = c.finish();
    Ok(Outcome {
        bytes,
        secs,
        latency: Some(h),
        ..Outcome::default()
    })
}

/// Request/response of `size` bytes, one connection, `count` round trips
/// after a tenth as many to warm up. `how`: kernel sockets spin instead
/// of blocking (ours always do).
pub struct RoundTrips {
    pub latency: Histogram<u64>,
    pub per_sec: f64,
}

pub fn rr(
    bed: &Bed,
    size: usize,
    count: u64,
    how: KernelSocket,
    port: u16,
) -> Result<RoundTrips, String> {
    let job = Job::KernelEcho { port, size, how };
    let (rt, _) = bed.with_server(job, |_| {
        let mut c = bed.connect(port, how).map_err(|e| e.to_string())?;
        let msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut back = vec![0u8; size];
        let mut h = histogram();
        let warm = count / 10;
        let mut t0 = Instant::now();
        for i in 0..warm + count {
            if i == warm {
                t0 = Instant::now();
            }
            let start = Instant::now();
            c.write_all(&msg).map_err(|e| e.to_string())?;
            c.read_exact(&mut back).map_err(|e| e.to_string())?;
            if i >= warm {
                h.record(start.elapsed().as_nanos() as u64)
                    .map_err(|e| e.to_string())?;
            }
        }
        let per_sec = count as f64 / t0.elapsed().as_secs_f64();
        if back != msg {
            return Err("the echo differs".into());
        }
        c.finish().map_err(|e| e.to_string())?;
        // The server's end of stream: it has seen ours.
        while c.read(&mut back).map_err(|e| e.to_string())? > 0 {}
        Ok(RoundTrips {
            latency: h,
            per_sec,
        })
    })?;
    Ok(rt)
}

/// The server half of `rr`: echoes `size`-byte requests to the end.
pub fn echo_server(
    s: &Serving<'_>,
    port: u16,
    size: usize,
    how: KernelSocket,
) -> Result<Outcome, String> {
    let mut c = s.accept(&s.listen(port)?, how)?;
    let mut buf = vec![0u8; size];
    loop {
        match c.read_exact(&mut buf) {
            Ok(()) => c.write_all(&buf).map_err(|e| e.to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let _ = c.finish();
                return Ok(Outcome::default());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Turns TCP Fast Open on, client and server, in the calling thread's
/// network namespace (net.ipv4.tcp_fastopen = 3).
fn enable_fast_open() -> Result<(), String> {
    std::fs::write("/proc/sys/net/ipv4/tcp_fastopen", "3")
        .map_err(|e| format!("net.ipv4.tcp_fastopen: {e}"))
}

/// Connect, one 64-byte request and response, close; repeated `count`
/// times or for `limit`. The server closes first, so TIME-WAIT stays on
/// its side, as with a web server. With `fast_open` (kernel at both ends
/// only) the request rides on the SYN (RFC 7413).
pub fn crr(
    bed: &Bed,
    count: u64,
    limit: Duration,
    port: u16,
    fast_open: bool,
) -> Result<RoundTrips, String> {
    let job = Job::KernelCrr { port, fast_open };
    let (rt, _) = bed.with_server(job, |_| {
        if fast_open {
            enable_fast_open()?;
        }
        let mut h = histogram();
        let msg = [7u8; 64];
        let mut back = [0u8; 64];
        let t0 = Instant::now();
        let mut n = 0u64;
        let mut run = || -> Result<(), String> {
            while n < count && t0.elapsed() < limit {
                let start = Instant::now();
                let mut c: Box<dyn Stream> = if fast_open {
                    Box::new(
                        bed.connect_fast_open(port, &msg)
                            .map_err(|e| format!("connect {n}: {e}"))?,
                    )
                } else {
                    let mut c = bed
                        .connect(port, KernelSocket::Big)
                        .map_err(|e| format!("connect {n}: {e}"))?;
                    c.write_all(&msg).map_err(|e| e.to_string())?;
                    c
                };
                c.read_exact(&mut back).map_err(|e| e.to_string())?;
                while c.read(&mut back).map_err(|e| e.to_string())? > 0 {}
                drop(c);
                h.record(start.elapsed().as_nanos() as u64)
                    .map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok(())
        };
        let r = run();
        let per_sec = n as f64 / t0.elapsed().as_secs_f64();
        r.map(|_| RoundTrips {
            latency: h,
            per_sec,
        })
    })?;
    Ok(rt)
}

/// The server half of `crr`: answers and closes until stopped.
pub fn crr_server(s: &Serving<'_>, port: u16, fast_open: bool) -> Result<Outcome, String> {
    if fast_open {
        enable_fast_open()?;
    }
    let l = s.end.listen(port).map_err(|e| format!("listen: {e}"))?;
    if fast_open {
        l.set_fast_open(1024)
            .map_err(|e| format!("TCP_FASTOPEN: {e}"))?;
    }
    s.ready();
    let mut buf = [0u8; 64];
    while !s.stopped() {
        let Ok(mut c) = s.accept(&l, KernelSocket::Big) else {
            continue;
        };
        if c.read_exact(&mut buf).is_ok() {
            let _ = c.write_all(&buf);
        }
    }
    Ok(Outcome::default())
}
