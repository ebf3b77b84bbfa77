//! The control connection of a run across two hosts, over the kernel's
//! TCP between the hosts' own addresses: `xdptcp-bench --peer HOST` here,
//! `xdptcp-bench serve` there (as iperf3 and netperf work). One line per
//! message:
//!
//! ```text
//! client: hello cc=bbr unsent=auto mtu=1500 busy_poll=off
//! server: hello dev=eth1 mac=.. ours=10.0.0.3/24 cpu=1 mtu=1500
//! client: clock                    (several times)
//! server: clock ns=<its clock>
//! client: job <job>                (job.rs)
//! server: ready | error <why>
//! client: stop                     (its half is done)
//! server: stopping
//! server: done <outcome> | error <why>
//! ```
//!
//! No latency figure mixes the two clocks raw: round trips are timed on
//! the client's clock, and the one-way chunk latencies of "latency during
//! bulk" are read on the receiver's clock from stamps shifted by the
//! offset measured here (the "clock" exchange with the smallest round
//! trip; the offset is right within half that round trip, which the
//! report states).

use crate::bed::{End, Settings};
use crate::job::{self, Job, Outcome, Stamps};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xdptcp::api::config::{interface_mtu, Algorithm, BusyPoll, UnsentLimit};

/// The default port of `xdptcp-bench serve`.
pub const PORT: u16 = 5201;

/// Clock exchanges at the start; the one with the smallest round trip
/// sets the offset.
const CLOCK_SAMPLES: usize = 64;

struct Line {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Line {
    fn new(s: TcpStream) -> Result<Line, String> {
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let w = s.try_clone().map_err(|e| e.to_string())?;
        Ok(Line {
            r: BufReader::new(s),
            w,
        })
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.w, "{line}").map_err(|e| format!("control connection: {e}"))
    }

    /// The next line; an `error ...` line as Err.
    fn recv(&mut self) -> Result<String, String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) => Err("the control connection closed".into()),
            Ok(_) => match l.trim_end().strip_prefix("error ") {
                Some(e) => Err(e.to_string()),
                None => Ok(l.trim_end().to_string()),
            },
            Err(e) => Err(format!("control connection: {e}")),
        }
    }

    fn expect(&mut self, word: &str) -> Result<String, String> {
        let l = self.recv()?;
        if l.split_whitespace().next() == Some(word) {
            Ok(l)
        } else {
            Err(format!("expected '{word}' from the peer, got '{l}'"))
        }
    }
}

fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn field<'a>(f: &HashMap<&str, &'a str>, k: &str) -> Result<&'a str, String> {
    f.get(k)
        .copied()
        .ok_or_else(|| format!("the peer's hello has no {k}"))
}

fn unsent_text(l: UnsentLimit) -> String {
    match l {
        UnsentLimit::Auto => "auto".into(),
        UnsentLimit::Off => "off".into(),
        UnsentLimit::Bytes(n) => n.to_string(),
    }
}

/// `ADDR/PREFIX` as our stack's IPv4 address.
pub fn parse_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}': give ADDR/PREFIX, e.g. 192.168.1.10/24"))?;
    let a = a
        .parse()
        .map_err(|_| format!("'{s}': not an IPv4 address (two-host runs are IPv4 for now)"))?;
    let p: u8 = p.parse().map_err(|_| format!("'{s}': bad prefix"))?;
    if p > 32 {
        return Err(format!("'{s}': prefix above 32"));
    }
    Ok((a, p))
}

/// The client's side of the control connection.
pub struct Control {
    line: Mutex<Line>,
    server: End,
    /// The server's clock minus ours, and half the round trip it was
    /// measured in.
    offset_ns: i64,
    uncertainty: Duration,
    /// What our stamps count from (every bed of the run uses it).
    pub base: Instant,
    /// The kernel's own address on this host, as the server sees it.
    pub local_kernel: IpAddr,
    /// Offloads off at both ends now.
    offloads_off: AtomicBool,
}

impl Control {
    /// Connects to `xdptcp-bench serve` at `peer`, agrees on the settings
    /// and measures the clock offset.
    pub fn connect(peer: SocketAddr, settings: &Settings) -> Result<Arc<Control>, String> {
        let s = TcpStream::connect_timeout(&peer, Duration::from_secs(10))
            .map_err(|e| format!("connecting to xdptcp-bench serve at {peer}: {e}"))?;
        let local_kernel = s.local_addr().map_err(|e| e.to_string())?.ip();
        let mut line = Line::new(s)?;
        line.send(&format!(
            "hello cc={} unsent={} mtu={} busy_poll={}",
            format!("{:?}", settings.cc).to_lowercase(),
            unsent_text(settings.unsent_limit),
            settings.mtu,
            settings
                .busy_poll
                .map_or("off".into(), |b| b.usecs.to_string())
        ))?;
        let hello = line.expect("hello")?;
        let f = fields(&hello);
        let (ip, prefix) = parse_cidr(field(&f, "ours")?)?;
        let server = End {
            netns: None,
            dev: field(&f, "dev")?.to_string(),
            mac: job::parse_mac(field(&f, "mac")?)?,
            kernel: peer.ip(),
            ours: (ip, prefix),
            ours6: None,
            cpu: field(&f, "cpu")?.parse().map_err(|_| "bad cpu")?,
        };
        let mtu: u32 = field(&f, "mtu")?.parse().map_err(|_| "bad mtu")?;
        if mtu != settings.mtu {
            return Err(format!(
                "MTU {} here, {mtu} on the peer's {}: set both interfaces alike",
                settings.mtu, server.dev
            ));
        }
        let base = Instant::now();
        let mut best: Option<(u64, i64)> = None;
        for _ in 0..CLOCK_SAMPLES {
            let t1 = base.elapsed().as_nanos() as i64;
            line.send("clock")?;
            let reply = line.expect("clock")?;
            let t2 = base.elapsed().as_nanos() as i64;
            let theirs: i64 = field(&fields(&reply), "ns")?
                .parse()
                .map_err(|_| "bad clock")?;
            let rtt = (t2 - t1) as u64;
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, theirs - (t1 + t2) / 2));
            }
        }
        let (rtt, offset_ns) = best.ok_or("no clock sample")?;
        Ok(Arc::new(Control {
            line: Mutex::new(line),
            server,
            offset_ns,
            uncertainty: Duration::from_nanos(rtt / 2),
            base,
            local_kernel,
            offloads_off: AtomicBool::new(false),
        }))
    }

    pub fn server_end(&self) -> &End {
        &self.server
    }

    /// Where the server counts our stamps from.
    pub fn stamps(&self) -> Stamps {
        Stamps {
            offset_ns: self.offset_ns,
        }
    }

    /// How far the clock offset may be off (half its round trip).
    pub fn clock_uncertainty(&self) -> Duration {
        self.uncertainty
    }

    /// Offloads at both ends off, or back as they were: `here` is this
    /// host's interface.
    pub fn offloads(&self, here: &str, off: bool) -> Result<(), String> {
        if self.offloads_off.swap(off, Ordering::Relaxed) == off {
            return Ok(());
        }
        crate::offloads::set(here, off)?;
        self.run(&Job::Offloads { off }, |_| Ok(())).map(|_| ())
    }

    /// Runs `job` on the server and, once it is ready, `client` (which
    /// may end the job early with the function it is given).
    pub fn run<T>(
        &self,
        job: &Job,
        client: impl FnOnce(&dyn Fn()) -> Result<T, String>,
    ) -> Result<(T, Outcome), String> {
        let mut guard = self.line.lock().unwrap_or_else(|e| e.into_inner());
        guard.send(&format!("job {}", job.to_line()))?;
        let ready = guard.expect("ready");
        let line = RefCell::new(&mut *guard);
        let stopped = Cell::new(false);
        let failed = RefCell::new(None);
        let stop = || {
            if stopped.replace(true) {
                return;
            }
            let mut l = line.borrow_mut();
            if let Err(e) = l.send("stop").and_then(|_| l.expect("stopping")) {
                *failed.borrow_mut() = Some(e);
            }
        };
        let mine = ready
            .map_err(|e| format!("server: {e}"))
            .and_then(|_| client(&stop));
        stop();
        if let Some(e) = failed.into_inner() {
            return Err(e);
        }
        let done = line.borrow_mut().recv();
        let outcome = done
            .and_then(|l| Outcome::parse(&l))
            .map_err(|e| format!("server: {e}"));
        Ok((mine?, outcome?))
    }
}

/// `xdptcp-bench serve`: answers clients on `port`, one at a time (with
/// `once`, only the first), running their jobs at `end`.
pub fn serve(port: u16, end: End, once: bool) -> Result<(), String> {
    let l = TcpListener::bind(("::", port))
        .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
        .map_err(|e| format!("listening on port {port}: {e}"))?;
    eprintln!(
        "xdptcp-bench serve: control on port {port}; our stack {}/{} on {}, CPU {}",
        end.ours.0, end.ours.1, end.dev, end.cpu
    );
    let base = Instant::now();
    loop {
        let (s, from) = l.accept().map_err(|e| e.to_string())?;
        eprintln!("client {from}");
        match serve_one(s, &end, base) {
            Ok(()) => eprintln!("client {from}: done"),
            Err(e) => eprintln!("client {from}: {e}"),
        }
        crate::offloads::restore_all();
        if once {
            return Ok(());
        }
    }
}

fn serve_one(s: TcpStream, end: &End, base: Instant) -> Result<(), String> {
    let mut end = end.clone();
    // The kernel's address on this host is the one the client reached.
    end.kernel = s
        .local_addr()
        .map_err(|e| e.to_string())?
        .ip()
        .to_canonical();
    let mut line = Line::new(s)?;
    let hello = line.expect("hello")?;
    let f = fields(&hello);
    let cc: Algorithm = field(&f, "cc")?.parse().map_err(|e| format!("{e:?}"))?;
    let unsent_limit = apps::units::parse_unsent_limit(field(&f, "unsent")?)?;
    let mtu = interface_mtu(&end.dev).map_err(|e| e.to_string())? as u32;
    let busy_poll = match field(&f, "busy_poll")? {
        "off" => None,
        n => Some(BusyPoll {
            usecs: n.parse().map_err(|_| "bad busy_poll")?,
            budget: 64,
        }),
    };
    let settings = Settings {
        cc,
        unsent_limit,
        mtu,
        busy_poll,
    };
    line.send(&format!(
        "hello dev={} mac={} ours={}/{} cpu={} mtu={mtu}",
        end.dev,
        job::mac_string(end.mac),
        end.ours.0,
        end.ours.1,
        end.cpu
    ))?;
    let writer = Arc::new(Mutex::new(line.w.try_clone().map_err(|e| e.to_string())?));
    let say = move |w: &Mutex<TcpStream>, l: &str| {
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(w, "{l}");
    };
    loop {
        let msg = match line.recv() {
            Ok(m) => m,
            // The client is gone: the run is over.
            Err(_) => return Ok(()),
        };
        if msg == "clock" {
            say(&writer, &format!("clock ns={}", base.elapsed().as_nanos()));
            continue;
        }
        let Some(text) = msg.strip_prefix("job ") else {
            say(&writer, &format!("error unknown request '{msg}'"));
            continue;
        };
        let job = match Job::parse(text) {
            Ok(j) => j,
            Err(e) => {
                // Still the exchange the client expects: a refusal, its
                // stop, and the same error to end.
                say(&writer, &format!("error {e}"));
                line.expect("stop")?;
                say(&writer, "stopping");
                say(&writer, &format!("error {e}"));
                continue;
            }
        };
        eprintln!("  {}", job.to_line());
        // The job runs on a thread of its own, so that a client that
        // vanishes mid-job cannot leave this loop waiting on it.
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = std::sync::mpsc::channel();
        {
            let (end, stop, w) = (end.clone(), stop.clone(), writer.clone());
            std::thread::spawn(move || {
                let ready = |r: Result<(), String>| match r {
                    Ok(()) => say(&w, "ready"),
                    Err(e) => say(&w, &format!("error {}", e.replace('\n', " "))),
                };
                let _ = done_tx.send(job::run(&end, &settings, base, &job, &ready, &stop));
            });
        }
        let heard = line.expect("stop");
        stop.store(true, Ordering::Relaxed);
        if heard.is_err() {
            // Every half ends soon once stopped; one that does not is
            // stuck, and this process with it.
            if done.recv_timeout(Duration::from_secs(30)).is_err() {
                crate::offloads::restore_all();
                eprintln!("xdptcp-bench serve: a job of a vanished client did not end; exiting");
                std::process::exit(3);
            }
            return Ok(());
        }
        say(&writer, "stopping");
        let result = done
            .recv()
            .unwrap_or_else(|_| Err("the job panicked".to_string()));
        match result {
            Ok(o) => say(&writer, &o.to_line()),
            Err(e) => say(&writer, &format!("error {}", e.replace('\n', " "))),
        }
    }
}
