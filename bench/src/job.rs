//! The server's half of a scenario, as a job: what it is asked to do
//! ([`Job`]), what it found ([`Outcome`]), both as one line of text for
//! the control connection, and [`run`], which does it at the server end.
//! On one machine a thread of the bench runs it; across two hosts
//! `xdptcp-bench serve` does, with the same code. The halves themselves
//! live beside their client halves (`scenario.rs`, `native.rs`,
//! `line_rate.rs`, `app_transfer.rs`).

use crate::bed::{End, KernelSocket, Listener, Settings, Stream};
use hdrhistogram::Histogram;
use std::cell::Cell;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// `flows` kernel streams accepted on `port`; each sends for
    /// `send_for` and closes, or (`None`) reads to the end.
    KernelBulk {
        port: u16,
        flows: usize,
        send_for: Option<Duration>,
    },
    /// One kernel stream of stamped 64 KiB chunks, read to the end; each
    /// chunk's latency from its stamp (`stamps`: see [`Stamps`]).
    KernelChunks {
        port: u16,
        how: KernelSocket,
        stamps: Stamps,
    },
    /// One kernel stream echoing `size`-byte requests.
    KernelEcho {
        port: u16,
        size: usize,
        how: KernelSocket,
    },
    /// Kernel connections answered (64 bytes) and closed, until stopped.
    KernelCrr { port: u16, fast_open: bool },
    /// Our stack's bulk end on `port` (`native.rs`): sends for `send_for`
    /// or receives, recording stamped chunks' latency with `stamps`.
    NativeBulk {
        port: u16,
        send_for: Option<Duration>,
        stamps: Option<Stamps>,
    },
    /// Our stack's echo server, one connection.
    NativeEcho { port: u16 },
    /// Our stack's crr server.
    NativeCrr { port: u16, fast_open: bool },
    /// Counts raw frames for our stack's IPv4 address until stopped.
    LineRx { shape: crate::line_rate::Shape },
    /// Sends raw frames to `to` for `dur`.
    LineTx {
        dur: Duration,
        to_mac: [u8; 6],
        to_ip: Ipv4Addr,
        shape: crate::line_rate::Shape,
    },
    /// `file_transfer recv` of `size` bytes on `port`.
    FileRecv { port: u16, size: u64 },
    /// The interface's offloads off (as the single-machine bed has them)
    /// or back as they were.
    Offloads { off: bool },
}

/// Where the client's stamps count from, on the server's clock: its
/// base instant shifted by `offset_ns` (0 on one machine; across hosts
/// the offset the control connection measured, `control.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps {
    pub offset_ns: i64,
}

impl Stamps {
    /// The client's stamp origin as an instant of this process.
    pub fn origin(self, base: Instant) -> Instant {
        let d = Duration::from_nanos(self.offset_ns.unsigned_abs());
        if self.offset_ns >= 0 {
            base + d
        } else {
            base.checked_sub(d).unwrap_or(base)
        }
    }
}

/// What the server's half found. Only what it measured is set.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Payload bytes it received (or sent, when it only sent).
    pub bytes: u64,
    /// Its own measure of the transfer's time (first to last byte).
    pub secs: f64,
    /// Raw frames counted or sent.
    pub frames: u64,
    /// Its core's bare ACKs per data segment received.
    pub acks_per_segment: f64,
    /// Busy CPU seconds of its host during the job (`cpu.rs`).
    pub cpu_s: f64,
    pub latency: Option<Histogram<u64>>,
    /// When the last stream ended: on one machine only (an instant of
    /// this process; never crosses hosts).
    pub end: Option<Instant>,
}

/// What a server half is given: its end, the run's settings, the stamp
/// base, and the ready and stop signals.
pub struct Serving<'a> {
    pub end: &'a End,
    pub settings: &'a Settings,
    pub base: Instant,
    ready: &'a dyn Fn(Result<(), String>),
    said: Cell<bool>,
    stop: &'a AtomicBool,
}

impl Serving<'_> {
    /// Tells the client to go ahead.
    pub fn ready(&self) {
        if !self.said.replace(true) {
            (self.ready)(Ok(()));
        }
    }

    /// The client is done (or gave up).
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The flag `stopped` reads.
    pub fn stop_flag(&self) -> &AtomicBool {
        self.stop
    }

    /// Waits until the client is done.
    pub fn wait_stop(&self) {
        while !self.stopped() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The next connection on `l`, or an error once the client is done
    /// (a client that failed before connecting must not leave the server
    /// waiting for good).
    pub fn accept(&self, l: &Listener, how: KernelSocket) -> Result<Box<dyn Stream>, String> {
        loop {
            if l.wait_pending(100) {
                return l.accept(how).map_err(|e| format!("accept: {e}"));
            }
            if self.stopped() {
                return Err("the client ended before connecting".into());
            }
        }
    }

    /// A kernel listener on `port` of this end, then ready.
    pub fn listen(&self, port: u16) -> Result<Listener, String> {
        let l = self.end.listen(port).map_err(|e| format!("listen: {e}"))?;
        self.ready();
        Ok(l)
    }
}

/// Runs `job` at `end` (the calling thread already in its namespace):
/// `ready` is told exactly once, Ok when the client may start or the
/// error that kept the job from starting; `stop` says the client is done.
pub fn run(
    end: &End,
    settings: &Settings,
    base: Instant,
    job: &Job,
    ready: &dyn Fn(Result<(), String>),
    stop: &AtomicBool,
) -> Result<Outcome, String> {
    let s = Serving {
        end,
        settings,
        base,
        ready,
        said: Cell::new(false),
        stop,
    };
    let cpu = crate::cpu::CpuMeter::start();
    let r = match *job {
        Job::KernelBulk {
            port,
            flows,
            send_for,
        } => crate::scenario::bulk_server(&s, port, flows, send_for),
        Job::KernelChunks { port, how, stamps } => {
            crate::scenario::chunks_server(&s, port, how, stamps)
        }
        Job::KernelEcho { port, size, how } => crate::scenario::echo_server(&s, port, size, how),
        Job::KernelCrr { port, fast_open } => crate::scenario::crr_server(&s, port, fast_open),
        Job::NativeBulk {
            port,
            send_for,
            stamps,
        } => crate::native::bulk_server(&s, port, send_for, stamps),
        Job::NativeEcho { port } => crate::native::echo_server(&s, port),
        Job::NativeCrr { port, fast_open } => crate::native::crr_server(&s, port, fast_open),
        Job::LineRx { shape } => crate::line_rate::rx(&s, shape),
        Job::LineTx {
            dur,
            to_mac,
            to_ip,
            shape,
        } => crate::line_rate::tx(&s, dur, to_mac, to_ip, shape),
        Job::FileRecv { port, size } => crate::app_transfer::recv(&s, port, size),
        Job::Offloads { off } => crate::offloads::set(&end.dev, off).map(|_| Outcome::default()),
    };
    match r {
        Ok(mut o) => {
            s.ready();
            o.cpu_s = cpu.busy_seconds();
            Ok(o)
        }
        Err(e) => {
            if !s.said.replace(true) {
                ready(Err(e.clone()));
            }
            Err(e)
        }
    }
}

// The text forms: `word key=value ...`, one line, no spaces in values.

/// `key=value` pairs after the first word.
fn fields(line: &str) -> (&str, HashMap<&str, &str>) {
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    (first, words.filter_map(|w| w.split_once('=')).collect())
}

fn get<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str) -> Result<T, String> {
    f.get(key)
        .ok_or_else(|| format!("no {key}"))?
        .parse()
        .map_err(|_| format!("bad {key}"))
}

fn get_opt<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str) -> Result<Option<T>, String> {
    f.get(key)
        .map(|v| v.parse().map_err(|_| format!("bad {key}")))
        .transpose()
}

fn how_text(h: KernelSocket) -> String {
    match h {
        KernelSocket::Big => "big".into(),
        KernelSocket::Spin => "spin".into(),
        KernelSocket::Lowat(n) => format!("lowat{n}"),
    }
}

fn parse_how(s: &str) -> Result<KernelSocket, String> {
    match s {
        "big" => Ok(KernelSocket::Big),
        "spin" => Ok(KernelSocket::Spin),
        _ => s
            .strip_prefix("lowat")
            .and_then(|n| n.parse().ok())
            .map(KernelSocket::Lowat)
            .ok_or_else(|| format!("bad socket kind {s}")),
    }
}

pub fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC {s}"))?;
    v.try_into().map_err(|_| format!("bad MAC {s}"))
}

impl Job {
    pub fn to_line(&self) -> String {
        let ms = |d: Duration| d.as_nanos().to_string();
        match self {
            Job::KernelBulk {
                port,
                flows,
                send_for,
            } => {
                let send = send_for.map_or(String::new(), |d| format!(" send_ns={}", ms(d)));
                format!("kernel_bulk port={port} flows={flows}{send}")
            }
            Job::KernelChunks { port, how, stamps } => format!(
                "kernel_chunks port={port} how={} offset_ns={}",
                how_text(*how),
                stamps.offset_ns
            ),
            Job::KernelEcho { port, size, how } => {
                format!("kernel_echo port={port} size={size} how={}", how_text(*how))
            }
            Job::KernelCrr { port, fast_open } => {
                format!("kernel_crr port={port} fast_open={fast_open}")
            }
            Job::NativeBulk {
                port,
                send_for,
                stamps,
            } => {
                let send = send_for.map_or(String::new(), |d| format!(" send_ns={}", ms(d)));
                let st = stamps.map_or(String::new(), |s| format!(" offset_ns={}", s.offset_ns));
                format!("native_bulk port={port}{send}{st}")
            }
            Job::NativeEcho { port } => format!("native_echo port={port}"),
            Job::NativeCrr { port, fast_open } => {
                format!("native_crr port={port} fast_open={fast_open}")
            }
            Job::LineRx { shape } => format!("line_rx shape={shape}"),
            Job::LineTx {
                dur,
                to_mac,
                to_ip,
                shape,
            } => format!(
                "line_tx dur_ns={} to_mac={} to_ip={to_ip} shape={shape}",
                ms(*dur),
                mac_string(*to_mac)
            ),
            Job::FileRecv { port, size } => format!("file_recv port={port} size={size}"),
            Job::Offloads { off } => format!("offloads off={off}"),
        }
    }

    pub fn parse(line: &str) -> Result<Job, String> {
        let (kind, f) = fields(line);
        let port = || get::<u16>(&f, "port");
        let ns = |k: &str| get_opt::<u64>(&f, k).map(|o| o.map(Duration::from_nanos));
        let stamps =
            || get_opt::<i64>(&f, "offset_ns").map(|o| o.map(|offset_ns| Stamps { offset_ns }));
        Ok(match kind {
            "kernel_bulk" => Job::KernelBulk {
                port: port()?,
                flows: get(&f, "flows")?,
                send_for: ns("send_ns")?,
            },
            "kernel_chunks" => Job::KernelChunks {
                port: port()?,
                how: parse_how(f.get("how").ok_or("no how")?)?,
                stamps: stamps()?.ok_or("no offset_ns")?,
            },
            "kernel_echo" => Job::KernelEcho {
                port: port()?,
                size: get(&f, "size")?,
                how: parse_how(f.get("how").ok_or("no how")?)?,
            },
            "kernel_crr" => Job::KernelCrr {
                port: port()?,
                fast_open: get(&f, "fast_open")?,
            },
            "native_bulk" => Job::NativeBulk {
                port: port()?,
                send_for: ns("send_ns")?,
                stamps: stamps()?,
            },
            "native_echo" => Job::NativeEcho { port: port()? },
            "native_crr" => Job::NativeCrr {
                port: port()?,
                fast_open: get(&f, "fast_open")?,
            },
            "line_rx" => Job::LineRx {
                shape: get(&f, "shape")?,
            },
            "line_tx" => Job::LineTx {
                dur: ns("dur_ns")?.ok_or("no dur_ns")?,
                to_mac: parse_mac(f.get("to_mac").ok_or("no to_mac")?)?,
                to_ip: get(&f, "to_ip")?,
                shape: get(&f, "shape")?,
            },
            "file_recv" => Job::FileRecv {
                port: port()?,
                size: get(&f, "size")?,
            },
            "offloads" => Job::Offloads {
                off: get(&f, "off")?,
            },
            _ => return Err(format!("unknown job '{kind}'")),
        })
    }
}

impl Outcome {
    /// `done ...`: every figure but `end`, which never crosses hosts; a
    /// histogram as `value:count` pairs of its recorded buckets.
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "done bytes={} secs={} frames={} acks={} cpu={}",
            self.bytes, self.secs, self.frames, self.acks_per_segment, self.cpu_s
        );
        if let Some(h) = &self.latency {
            let pairs: Vec<String> = h
                .iter_recorded()
                .map(|v| format!("{}:{}", v.value_iterated_to(), v.count_at_value()))
                .collect();
            s += &format!(" latency={}", pairs.join(","));
        }
        s
    }

    pub fn parse(line: &str) -> Result<Outcome, String> {
        let (word, f) = fields(line);
        if word != "done" {
            return Err(format!("expected done, got '{line}'"));
        }
        let latency = match f.get("latency") {
            None => None,
            Some(text) => {
                let mut h = crate::scenario::histogram();
                for pair in text.split(',').filter(|p| !p.is_empty()) {
                    let (v, c) = pair.split_once(':').ok_or("bad latency")?;
                    let (v, c): (u64, u64) = (
                        v.parse().map_err(|_| "bad latency")?,
                        c.parse().map_err(|_| "bad latency")?,
                    );
                    h.record_n(v, c).map_err(|e| e.to_string())?;
                }
                Some(h)
            }
        };
        Ok(Outcome {
            bytes: get(&f, "bytes")?,
            secs: get(&f, "secs")?,
            frames: get(&f, "frames")?,
            acks_per_segment: get(&f, "acks")?,
            cpu_s: get(&f, "cpu")?,
            latency,
            end: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_reads_back_as_written() {
        let jobs = [
            Job::KernelBulk {
                port: 1,
                flows: 4,
                send_for: Some(Duration::from_millis(1500)),
            },
            Job::KernelBulk {
                port: 1,
                flows: 1,
                send_for: None,
            },
            Job::KernelChunks {
                port: 2,
                how: KernelSocket::Lowat(65536),
                stamps: Stamps { offset_ns: -12345 },
            },
            Job::KernelEcho {
                port: 3,
                size: 64,
                how: KernelSocket::Spin,
            },
            Job::KernelCrr {
                port: 4,
                fast_open: true,
            },
            Job::NativeBulk {
                port: 5,
                send_for: None,
                stamps: Some(Stamps { offset_ns: 7 }),
            },
            Job::NativeEcho { port: 6 },
            Job::NativeCrr {
                port: 7,
                fast_open: false,
            },
            Job::LineRx {
                shape: crate::line_rate::Shape::Bare,
            },
            Job::LineTx {
                dur: Duration::from_secs(1),
                to_mac: [2, 0, 0, 0, 0xab, 1],
                to_ip: Ipv4Addr::new(10, 1, 2, 3),
                shape: crate::line_rate::Shape::Tcp,
            },
            Job::FileRecv {
                port: 8,
                size: 1 << 30,
            },
            Job::Offloads { off: true },
        ];
        for j in jobs {
            assert_eq!(Job::parse(&j.to_line()), Ok(j.clone()), "{}", j.to_line());
        }
        assert!(Job::parse("kernel_bulk port=1").is_err());
        assert!(Job::parse("reboot").is_err());
    }

    #[test]
    fn an_outcome_keeps_its_figures_and_its_histogram() {
        let mut h = crate::scenario::histogram();
        for v in [1_000u64, 1_000, 25_000, 3_000_000] {
            h.record(v).unwrap();
        }
        let o = Outcome {
            bytes: 123_456_789,
            secs: 1.25,
            frames: 42,
            acks_per_segment: 0.125,
            cpu_s: 2.5,
            latency: Some(h.clone()),
            end: Some(Instant::now()),
        };
        let back = Outcome::parse(&o.to_line()).unwrap();
        assert_eq!(
            (
                back.bytes,
                back.secs,
                back.frames,
                back.acks_per_segment,
                back.cpu_s
            ),
            (123_456_789, 1.25, 42, 0.125, 2.5)
        );
        let b = back.latency.unwrap();
        assert_eq!(b.len(), 4);
        for q in [0.25, 0.5, 0.75, 1.0] {
            assert_eq!(b.value_at_quantile(q), h.value_at_quantile(q));
        }
        assert!(back.end.is_none());
        assert!(Outcome::parse("error it broke").is_err());
    }
}
