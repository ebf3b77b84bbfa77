//! The per-core runtime on a veth pair with two queues, against the Linux
//! kernel: two cores, each with its own AF_XDP socket, connection table
//! and timer wheel. Needs root (CI runs as root).

use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};
use xdptcp::device::afxdp::AfXdpConfig;
use xdptcp::iface::Handle;
use xdptcp::runtime::steer::flow_owner;
use xdptcp::runtime::{CoreApp, CoreContext, PollMode, Runtime, RuntimeConfig};
use xdptcp::tcp::State;
use xdptcp_tools::topology::{Spec, Topology};

mod kernel_peer;
use kernel_peer::start_server;

const EACH: usize = 1 << 20;
const PER_DIRECTION: usize = 16;
const OUR_PORT: u16 = 6000;

fn data(k: usize) -> Vec<u8> {
    (0..EACH).map(|i| (i * (k + 3) + k) as u8).collect()
}

/// One queue, our address, keys fixed for the test. Call from a thread in
/// our namespace (the MAC is asked of the interface there).
fn config(t: &Topology, poll: PollMode) -> RuntimeConfig {
    let mut cfg = RuntimeConfig::for_interface(&t.dev, t.our_ip(), 24).unwrap();
    cfg.poll = poll;
    cfg.iface.isn_secret = [4; 16];
    cfg
}

struct Active {
    h: Handle,
    data: Vec<u8>,
    sent: usize,
    closed: bool,
    reply: Vec<u8>,
}

struct Passive {
    h: Handle,
    hash: Sha256,
    replied: bool,
}

/// Opens connections `k` with `k % cores == core` to the kernel server and
/// sends each its data; serves kernel clients on `OUR_PORT` by answering
/// with the SHA-256 of what they sent.
struct Flows {
    peer: SocketAddr,
    started: bool,
    active: Vec<Active>,
    passive: Vec<Passive>,
    passive_done: Arc<AtomicUsize>,
    errors: Vec<String>,
}

impl CoreApp for Flows {
    fn poll(&mut self, cx: &mut CoreContext<'_>) -> bool {
        let mut busy = false;
        if !self.started {
            self.started = true;
            cx.iface.listen(OUR_PORT, None, 64).unwrap();
            for k in (cx.core..PER_DIRECTION).step_by(cx.cores) {
                let h = cx.iface.connect(self.peer, None, cx.now).unwrap();
                self.active.push(Active {
                    h,
                    data: data(k),
                    sent: 0,
                    closed: false,
                    reply: Vec::new(),
                });
            }
        }
        while let Ok(Some(h)) = cx.iface.accept(OUR_PORT) {
            self.passive.push(Passive {
                h,
                hash: Sha256::new(),
                replied: false,
            });
        }
        let mut buf = [0u8; 65536];
        for a in &mut self.active {
            let c = cx.iface.tcp(a.h).unwrap();
            if let Some(e) = c.error() {
                self.errors.push(format!("active: {e:?}"));
            }
            if c.state() != State::SynSent && !a.closed {
                while a.sent < a.data.len() {
                    match c.send(&a.data[a.sent..]) {
                        Ok(n) if n > 0 => {
                            a.sent += n;
                            busy = true;
                        }
                        _ => break,
                    }
                }
                if a.sent == a.data.len() {
                    c.close();
                    a.closed = true;
                }
            }
            if let Ok(n) = c.recv(&mut buf) {
                a.reply.extend_from_slice(&buf[..n]);
                busy |= n > 0;
            }
        }
        for p in &mut self.passive {
            let c = cx.iface.tcp(p.h).unwrap();
            while let Ok(n) = c.recv(&mut buf) {
                if n == 0 {
                    break;
                }
                p.hash.update(&buf[..n]);
                busy = true;
            }
            if c.at_eof() && !p.replied {
                let digest = format!("{:x}", p.hash.clone().finalize());
                c.send(digest.as_bytes()).unwrap();
                c.close();
                p.replied = true;
                self.passive_done.fetch_add(1, Ordering::Relaxed);
            }
        }
        busy
    }

    fn done(&self) -> bool {
        let tcp_done = self.active.iter().all(|a| a.reply.len() == 64);
        tcp_done && self.passive_done.load(Ordering::Relaxed) == PER_DIRECTION
    }
}

#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn two_queues_two_cores_spread_flows_and_hand_off_without_loss() {
    spread_flows("q", 216, false);
}

/// The same with every flow over IPv6: the symmetric hash of IPv6
/// 4-tuples keeps each connection's frames on its core.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn two_cores_spread_ipv6_flows_and_hand_off_without_loss() {
    spread_flows("q6", 210, true);
}

fn spread_flows(tag: &str, subnet: u8, ipv6: bool) {
    xdptcp_tools::topology::require_root();
    let spec = Spec {
        subnet,
        queues: 2,
        ipv6,
        ..Spec::default()
    };
    let t = Arc::new(Topology::create_spec(tag, spec).expect("topology"));
    let t2 = t.clone();
    // The kernel server listens on one IPv6 socket that takes IPv4 too.
    let (ours, peer) = (t.our_addr(ipv6), t.peer_addr(ipv6));
    std::thread::spawn(move || {
        let n = PER_DIRECTION;
        let (mut server, mut out) = start_server(
            &t2,
            &format!(
                "import socket,hashlib,threading\n\
                 s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('::',5005));s.listen(256);print('ready',flush=True)\n\
                 def serve(c):\n  h=hashlib.sha256()\n  while True:\n    b=c.recv(1<<16)\n    if not b: break\n    h.update(b)\n  c.sendall(h.hexdigest().encode());c.close()\n\
                 ts=[]\n\
                 for _ in range({n}):\n  c,_=s.accept();th=threading.Thread(target=serve,args=(c,));th.start();ts.append(th)\n\
                 for th in ts: th.join()\n\
                 print('done',flush=True)"
            ),
        );
        t2.enter_ours().unwrap();
        let peer = SocketAddr::new(peer, 5005);
        let passive_done = Arc::new(AtomicUsize::new(0));
        let mut cfg = RuntimeConfig {
            afxdp: AfXdpConfig {
                mode: xdptcp::device::afxdp::XdpMode::Driver,
                ..AfXdpConfig::new(&t2.dev)
            },
            queues: 2,
            ..config(&t2, PollMode::Busy)
        };
        if ipv6 {
            cfg.ipv6 = vec![(t2.our_ip6(), 64)];
        }
        let rt = Runtime::start(cfg, |_| Flows {
            peer,
            started: false,
            active: Vec::new(),
            passive: Vec::new(),
            passive_done: passive_done.clone(),
            errors: Vec::new(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let start = StdInstant::now();
        while rt.counters().iter().any(|c| c.loops == 0) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Kernel clients: each sends its data to our listener and checks
        // the digest we send back.
        let clients = t2
            .peer_cmd(&[
                "python3",
                "-c",
                &format!(
                    "import socket,hashlib,threading\n\
                     def data(k): return bytes(((i*(k+3)+k)&255) for i in range({EACH}))\n\
                     res=[None]*{n}\n\
                     def run(k):\n  d=data(100+k);c=socket.create_connection(('{ip}',{OUR_PORT}),timeout=60)\n  c.sendall(d);c.shutdown(socket.SHUT_WR);r=b''\n  while len(r)<64:\n    b=c.recv(64)\n    if not b: break\n    r+=b\n  res[k]=(r.decode()==hashlib.sha256(d).hexdigest())\n\
                     ts=[threading.Thread(target=run,args=(k,)) for k in range({n})]\n\
                     [t.start() for t in ts];[t.join() for t in ts]\n\
                     print('ok' if all(res) else 'BAD %s'%res,flush=True)",
                    ip = ours
                ),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 clients");
        let finished = rt.wait_done(Duration::from_secs(90), Duration::from_secs(1), |rt| {
            for (i, c) in rt.counters().iter().enumerate() {
                eprintln!("core {i}: {c}");
            }
        });
        let snaps = rt.snapshot(Duration::from_secs(5));
        // Frames may be in a queue between the cores right now; once the
        // traffic has stopped, every frame handed off must have been taken.
        let settle = StdInstant::now();
        let counters = loop {
            let c = rt.counters();
            let handed: u64 = c.iter().map(|c| c.handoff.handed_off).sum();
            let taken: u64 = c.iter().map(|c| c.handoff.taken_over).sum();
            if handed == taken || settle.elapsed() > Duration::from_secs(3) {
                break c;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let apps = rt.stop();
        let elapsed = start.elapsed();
        let client_out = clients.wait_with_output().unwrap();
        assert!(finished, "transfers did not finish in 90 s");
        assert_eq!(
            String::from_utf8_lossy(&client_out.stdout).trim(),
            "ok",
            "kernel clients' digests"
        );
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done");
        let _ = server.wait();

        // Every active connection's digest, whichever core ran it.
        let mut k_seen = 0;
        for app in &apps {
            assert!(app.errors.is_empty(), "{:?}", app.errors);
            for a in &app.active {
                let want = format!("{:x}", Sha256::digest(&a.data));
                assert_eq!(String::from_utf8_lossy(&a.reply), want);
                k_seen += 1;
            }
        }
        assert_eq!(k_seen, n);

        // Each connection lives on the core its tuple hashes to, and both
        // cores have some.
        assert_eq!(snaps.len(), 2, "both cores answered the snapshot");
        let mut total = 0;
        for s in &snaps {
            let mine = s.connections.len();
            eprintln!(
                "core {}: {mine} connections, {} (iface: {} RSTs sent)",
                s.core, s.counters, s.iface.tcp_resets_sent
            );
            assert!(mine > 0, "core {} got no flows", s.core);
            for c in &s.connections {
                let owner = flow_owner(
                    (c.tuple.local_ip, c.tuple.local_port),
                    (c.tuple.remote_ip, c.tuple.remote_port),
                    2,
                );
                assert_eq!(owner, s.core, "{:?} lives on the wrong core", c.tuple);
            }
            // A segment that reached a core without its connection would
            // have been answered with a reset.
            assert_eq!(s.iface.tcp_resets_sent, 0, "core {} saw foreign segments", s.core);
            total += mine;
        }
        assert_eq!(total, 2 * n);
        // Both queues carried traffic: each socket received and sent
        // frames of its own (its queue's counters, before any hand-off).
        for (q, c) in counters.iter().enumerate() {
            assert!(
                c.rx_frames > 0 && c.tx_frames > 0,
                "queue {q} carried nothing: {c}"
            );
        }

        // Nothing lost in the hand-off: what one core passed on, the other
        // took over, and nothing was dropped.
        let handed: u64 = counters.iter().map(|c| c.handoff.handed_off).sum();
        let taken: u64 = counters.iter().map(|c| c.handoff.taken_over).sum();
        let dropped: u64 = counters.iter().map(|c| c.handoff.dropped).sum();
        assert_eq!(dropped, 0);
        assert_eq!(handed, taken, "frames handed off but never taken over");
        eprintln!(
            "{} connections ({} each way x 1 MiB) over 2 cores in {:.2} s; {handed} frames handed off",
            2 * n,
            n,
            elapsed.as_secs_f64()
        );
    })
    .join()
    .unwrap();
}

struct Idle;
impl CoreApp for Idle {
    fn poll(&mut self, _: &mut CoreContext<'_>) -> bool {
        false
    }
}

/// An idle stack: busy polling spins its core flat out, adaptive polling
/// blocks on the socket and spins far less; both still answer a ping.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn adaptive_polling_backs_off_when_idle_and_still_answers() {
    xdptcp_tools::topology::require_root();
    let t = Arc::new(Topology::create("i", 219, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        t2.enter_ours().unwrap();
        let mut loops = Vec::new();
        for poll in [PollMode::Busy, PollMode::Adaptive] {
            let cfg = config(&t2, poll);
            let rt = Runtime::start(cfg, |_| Idle).unwrap_or_else(|e| panic!("{e}"));
            std::thread::sleep(Duration::from_millis(1000));
            let c = rt.counters()[0];
            let ping = t2
                .peer_cmd(&[
                    "ping",
                    "-c",
                    "2",
                    "-i",
                    "0.2",
                    "-W",
                    "2",
                    &t2.our_ip().to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            rt.stop();
            eprintln!(
                "{poll:?}: {} loops and {} blocking waits in 1 s idle",
                c.loops, c.idle_waits
            );
            assert!(ping.success(), "{poll:?} stack did not answer ping");
            loops.push((c.loops, c.idle_waits));
        }
        let (busy, adaptive) = (loops[0], loops[1]);
        assert_eq!(busy.1, 0, "busy polling never blocks");
        assert!(
            adaptive.1 > 100,
            "adaptive polling blocked only {} times",
            adaptive.1
        );
        assert!(
            adaptive.0 * 10 < busy.0,
            "adaptive {} loops vs busy {}",
            adaptive.0,
            busy.0
        );
    })
    .join()
    .unwrap();
}

/// The XDP program takes only what the stack serves: while our stack owns
/// .1 on the interface, the kernel in the same namespace keeps a second
/// IPv4 address and an IPv6 address there, answers ping and ping -6 to
/// them from the peer, and serves TCP on the second address; our stack
/// still answers its own ping.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn the_kernel_keeps_its_other_addresses_while_the_stack_runs() {
    xdptcp_tools::topology::require_root();
    let t = Arc::new(Topology::create("a", 236, false).expect("topology"));
    let n = t.subnet;
    let (kernel_v4, ours_v6, peer_v6) = (
        format!("10.{n}.0.3"),
        format!("fd00:{n}::1"),
        format!("fd00:{n}::2"),
    );
    t.add_kernel_address(false, &format!("{kernel_v4}/24"))
        .unwrap();
    t.add_kernel_address(false, &format!("{ours_v6}/64"))
        .unwrap();
    t.add_kernel_address(true, &format!("{peer_v6}/64"))
        .unwrap();
    // A kernel TCP echo on the second address, in our namespace.
    let mut listener = t
        .ours_cmd(&[
            "python3",
            "-c",
            &format!(
                "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('{kernel_v4}',7100));s.listen();print('ready',flush=True)\n\
                 while True:\n  c,_=s.accept();c.sendall(c.recv(100));c.close()"
            ),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(listener.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let t2 = t.clone();
    let result = std::thread::spawn(move || {
        t2.enter_ours().unwrap();
        let rt = Runtime::start(config(&t2, PollMode::Adaptive), |_| Idle)
            .unwrap_or_else(|e| panic!("{e}"));
        let ping = |args: &[&str]| {
            t2.peer_cmd(&[&["ping", "-c", "2", "-i", "0.2", "-W", "2"], args].concat())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        let ours = ping(&[&t2.our_ip().to_string()]);
        let kernel4 = ping(&[&kernel_v4]);
        let kernel6 = ping(&["-6", &ours_v6]);
        let tcp = t2
            .peer_cmd(&[
                "python3",
                "-c",
                &format!(
                    "import socket\nc=socket.create_connection(('{kernel_v4}',7100),timeout=3)\n\
                     c.sendall(b'still the kernel');print(c.recv(100).decode())"
                ),
            ])
            .output()
            .unwrap();
        let ours_after = ping(&[&t2.our_ip().to_string()]);
        rt.stop();
        (ours, kernel4, kernel6, tcp, ours_after)
    })
    .join()
    .unwrap();
    let _ = listener.kill();
    let _ = listener.wait();
    let (ours, kernel4, kernel6, tcp, ours_after) = result;
    assert!(ours && ours_after, "our stack answers ping on its address");
    assert!(
        kernel4,
        "the kernel answers ping on its second IPv4 address"
    );
    assert!(
        kernel6,
        "the kernel answers ping -6 (neighbour discovery passes)"
    );
    assert_eq!(
        String::from_utf8_lossy(&tcp.stdout).trim(),
        "still the kernel",
        "kernel TCP on the second address: {}",
        String::from_utf8_lossy(&tcp.stderr)
    );
}

/// A stack restarted on the same queue again and again (a server that is
/// restarted, a test suite that reuses a queue) binds every time.
#[test]
#[ignore = "needs root (namespaces, AF_XDP): scripts/test.sh runs it as root"]
fn fifty_restarts_on_one_queue_each_answer_ping() {
    xdptcp_tools::topology::require_root();
    let t = Arc::new(Topology::create("z", 237, false).expect("topology"));
    let t2 = t.clone();
    std::thread::spawn(move || {
        t2.enter_ours().unwrap();
        let start = StdInstant::now();
        let mut longest = Duration::ZERO;
        for i in 0..50 {
            let poll = [PollMode::Busy, PollMode::Adaptive][i % 2];
            let rt = Runtime::start(config(&t2, poll), |_| Idle)
                .unwrap_or_else(|e| panic!("start {i}: {e}"));
            longest = longest.max(rt.bind_wait());
            let ping = t2
                .peer_cmd(&["ping", "-c", "1", "-W", "2", &t2.our_ip().to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            rt.stop();
            assert!(ping.success(), "run {i} did not answer ping");
        }
        eprintln!(
            "50 start/ping/stop cycles in {:.2} s; longest wait for the kernel to release the queue {:?}",
            start.elapsed().as_secs_f64(),
            longest
        );
    })
    .join()
    .unwrap();
}
