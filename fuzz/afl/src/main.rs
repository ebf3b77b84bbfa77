//! AFL++ drives one of `xdptcp-fuzz`'s targets (the same code the havoc
//! mutator runs), guided by edge coverage. Which: the XDPTCP_TARGET
//! environment variable (wire, iface, live, percore; default live).
//! `--write-seeds TARGET DIR` writes that target's seeds, one file each.
//! `tools/afl.sh` builds and runs it.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--write-seeds") && args.len() == 4 {
        for (k, seed) in xdptcp_fuzz::targets::seeds(&args[2]).iter().enumerate() {
            let path = std::path::Path::new(&args[3]).join(format!("seed-{k}"));
            std::fs::write(&path, seed).expect("writing a seed");
        }
        return;
    }
    let name = std::env::var("XDPTCP_TARGET").unwrap_or_else(|_| "live".to_string());
    let Some(target) = xdptcp_fuzz::targets::by_name(&name) else {
        eprintln!("xdptcp-afl: no target '{name}' (wire, iface, live, percore)");
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
