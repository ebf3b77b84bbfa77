#!/usr/bin/env python3
"""Captures real frames from the Linux kernel's TCP for the wire test vectors.

Two network namespaces joined by a veth pair; a kernel TCP client talks to a
kernel TCP server while an AF_PACKET socket records every frame on one end.
Prints, as Rust constants, the first SYN, SYN-ACK, data segment, FIN and
a RST (a connect to a closed port). The output of one run is pasted into
`stack/tests/kernel_frames.rs`. Needs root; touches nothing outside its own
namespaces, which it removes even on failure.

    sudo python3 tools/capture_kernel_frames.py
"""

import ctypes
import os
import socket
import subprocess
import sys
import threading
import time

TAG = f"xkf{os.getpid() % 100000}"
NS_A, NS_B = f"{TAG}a", f"{TAG}b"
IP_A, IP_B = "10.77.0.1", "10.77.0.2"


def sh(*args):
    subprocess.run(args, check=True)


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def in_ns(ns, fn):
    """Runs fn with this thread inside namespace ns."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        setns(target)
        return fn()
    finally:
        setns(own)
        os.close(own)
        os.close(target)


def setup():
    sh("ip", "netns", "add", NS_A)
    sh("ip", "netns", "add", NS_B)
    sh("ip", "link", "add", f"{TAG}0", "netns", NS_A, "type", "veth",
       "peer", "name", f"{TAG}1", "netns", NS_B)
    for ns, dev, ip in ((NS_A, f"{TAG}0", IP_A), (NS_B, f"{TAG}1", IP_B)):
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        # Offloads off so the capture shows what goes on the wire: real
        # checksums and MSS-sized segments.
        subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", dev,
                        "tx", "off", "rx", "off", "tso", "off", "gso", "off"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def teardown():
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def main():
    if os.geteuid() != 0:
        sys.exit("capture_kernel_frames: needs root (network namespaces)")
    teardown()
    try:
        setup()
        frames = []
        cap = in_ns(NS_A, lambda: socket.socket(
            socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3)))
        cap.bind((f"{TAG}0", 0))
        cap.settimeout(0.5)
        stop = threading.Event()

        def record():
            while not stop.is_set():
                try:
                    data, addr = cap.recvfrom(65535)
                except socket.timeout:
                    continue
                frames.append((addr[2], data))

        t = threading.Thread(target=record)
        t.start()

        def server_setup():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((IP_B, 5001))
            s.listen()
            return s

        srv = in_ns(NS_B, server_setup)

        def serve():
            c, _ = srv.accept()
            while c.recv(65536):
                pass
            c.close()

        st = threading.Thread(target=serve)
        st.start()
        time.sleep(0.2)

        def client():
            c = socket.create_connection((IP_B, 5001))
            c.sendall(b"hello from the linux kernel\n")
            time.sleep(0.1)
            c.close()
            time.sleep(0.1)
            r = socket.socket()
            try:
                r.connect((IP_B, 5002))
            except ConnectionRefusedError:
                pass
            r.close()

        in_ns(NS_A, client)
        st.join()
        time.sleep(0.3)
        stop.set()
        t.join()
    finally:
        teardown()

    def tcp_flags(f):
        if len(f) < 54 or f[12:14] != b"\x08\x00" or f[23] != 6:
            return None
        ihl = (f[14] & 15) * 4
        return f[14 + ihl + 13]

    wanted = [
        ("SYN", lambda fl, out: out and fl == 0x02),
        ("SYN_ACK", lambda fl, out: not out and fl == 0x12),
        ("DATA", lambda fl, out: out and fl == 0x18),
        ("FIN", lambda fl, out: out and fl & 0x01),
        ("RST", lambda fl, out: not out and fl & 0x04),
    ]
    for name, match in wanted:
        for pkttype, f in frames:
            fl = tcp_flags(f)
            if fl is not None and match(fl, pkttype == socket.PACKET_OUTGOING):
                print(f"const {name}: &str = \"{f.hex()}\";")
                break
        else:
            sys.exit(f"capture_kernel_frames: no {name} frame captured")


if __name__ == "__main__":
    main()
