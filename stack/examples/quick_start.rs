//! Quick Start: the socket API on our own stack.
//! Usage: quick_start IFNAME ADDR/PREFIX ECHO_SERVER_IP:PORT
//! (as root, inside the namespace that has IFNAME).

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use xdptcp::api::socket::{Stack, TcpListener, TcpStream};
use xdptcp::runtime::RuntimeConfig;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, ifname, addr, echo] = &args[..] else {
        eprintln!("usage: quick_start IFNAME ADDR/PREFIX ECHO_SERVER_IP:PORT");
        std::process::exit(2);
    };
    let (ip, prefix) = addr.split_once('/').expect("ADDR/PREFIX");
    let bad = |what| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let ip = ip.parse().map_err(|_| bad("bad address"))?;
    let prefix = prefix.parse().map_err(|_| bad("bad prefix"))?;
    let echo: SocketAddrV4 = echo.parse().map_err(|_| bad("bad IP:PORT"))?;

    // Our stack takes the interface's frames and owns `ip` there.
    let stack = Stack::start(RuntimeConfig::for_interface(ifname, ip, prefix)?)?;

    // A client: connect, write, read the echo back.
    let mut conn = TcpStream::connect(&stack, echo)?;
    conn.set_nodelay(true);
    conn.write_all(b"hello from xdptcp")?;
    let mut reply = [0u8; 17];
    conn.read_exact(&mut reply)?;
    println!("echo replied: {}", String::from_utf8_lossy(&reply));
    conn.close();

    // A server: accept one connection and echo until the peer closes.
    let listener = TcpListener::bind(&stack, 8080)?;
    println!("listening on {ip}:8080");
    let (mut peer, from) = listener.accept()?;
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = peer.read(&mut buf)?;
        if n == 0 {
            break;
        }
        peer.write_all(&buf[..n])?;
        total += n;
    }
    peer.shutdown()?;
    println!("echoed {total} bytes to {from}");
    Ok(())
}
