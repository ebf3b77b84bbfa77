// Rust on stable cannot define C-variadic functions; fcntl and ioctl in
// packetdrill's interface are variadic, so a few lines of C take the one
// argument they carry and call into Rust.
fn main() {
    println!("cargo:rerun-if-changed=src/variadic.c");
    cc::Build::new()
        .file("src/variadic.c")
        .compile("xdptcp_pd_variadic");
}
