//! A clean stop on SIGINT or SIGTERM for the programs that make network
//! namespaces or hold AF_XDP queues. A signal kills a process without
//! running destructors, so a topology's namespaces (and a program's
//! temporary files: the demo's is 4 GiB) would outlive it; here the first
//! signal removes every namespace and file the program still holds (each
//! `Topology` registers its own, files through `remove_on_signal`) and
//! exits with a message, and a second signal exits at once. The kernel releases the AF_XDP sockets and
//! detaches the XDP programs (attached through BPF links) when the process
//! exits, so the same queue can be bound again straight away.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

/// Namespaces this process made and has not removed yet.
static NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Temporary files likewise.
static FILES: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());
/// The write end of the pipe the handler wakes the watcher through.
static WAKE: AtomicI32 = AtomicI32::new(-1);
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers (once per process; later calls do nothing). The
/// watcher thread names `program` in what it prints.
pub fn on_signal_clean_up(program: &'static str) {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!(
            "{program}: no signal handling ({})",
            std::io::Error::last_os_error()
        );
        return;
    }
    WAKE.store(fds[1], Ordering::SeqCst);
    std::thread::spawn(move || {
        let mut byte = 0u8;
        // SAFETY: a one-byte read into a byte we own, from our pipe.
        while unsafe { libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) } != 1 {}
        let names = std::mem::take(&mut *NAMESPACES.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            eprintln!("{program}: interrupted; stopping (a second signal stops at once)");
        } else {
            eprintln!(
                "{program}: interrupted; removing the namespaces it made ({}) (a second signal stops at once)",
                names.join(", ")
            );
        }
        for ns in &names {
            remove_namespace(ns);
        }
        for f in std::mem::take(&mut *FILES.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = match f.is_dir() {
                true => std::fs::remove_dir_all(f),
                false => std::fs::remove_file(f),
            };
        }
        eprintln!("{program}: stopped by a signal");
        std::process::exit(130);
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `handle` only touches atomics and calls write(2) and
        // _exit(2), both async-signal-safe; the sigaction struct is fully
        // initialised (zeroed, then the handler and an empty mask).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handle as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

extern "C" fn handle(_sig: i32) {
    if SIGNALLED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe; nothing is cleaned up.
        unsafe { libc::_exit(130) };
    }
    let fd = WAKE.load(Ordering::SeqCst);
    let byte = 1u8;
    // SAFETY: write(2) of one byte we own to our pipe; async-signal-safe.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

/// Called by a program about to exit on its own: if a signal came, the
/// failure it is about to report is most likely the clean-up's doing (the
/// namespaces under it are going), so it waits for the clean-up to exit
/// with 130 instead.
pub fn wait_if_signalled() {
    if SIGNALLED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// A temporary file (or directory, with what is in it) to remove if a
/// signal stops the program (its owner removes it otherwise, and calls
/// `keep_on_signal`).
pub fn remove_on_signal(path: &std::path::Path) {
    FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
}

/// The file is gone, or is kept on purpose (renamed into place).
pub fn keep_on_signal(path: &std::path::Path) {
    FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|f| f != path);
}

/// A namespace to remove if a signal stops the program.
pub(crate) fn hold(ns: &str) {
    NAMESPACES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ns.to_string());
}

/// The namespace is gone (or kept on purpose): nothing to do for it.
pub(crate) fn release(ns: &str) {
    NAMESPACES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|n| n != ns);
}

pub(crate) fn remove_namespace(ns: &str) {
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(std::process::Stdio::null())
        .status();
}
