//! The fuzz targets and their seeds.

pub mod iface;
pub mod live;
pub mod percore;
pub mod wire;

pub type Target = fn(&[u8]);

/// Every target by name, in the order `tools/fuzz.sh` runs them.
pub const ALL: &[(&str, Target)] = &[
    ("wire", wire::run),
    ("iface", iface::run),
    ("live", live::run),
    ("percore", percore::run),
];

pub fn by_name(name: &str) -> Option<Target> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Frames captured from the Linux kernel's TCP (the same captures
/// `stack/tests/kernel_frames.rs` checks field by field), built in so the
/// fuzzer needs no files; `--corpus DIR` adds more.
pub const KERNEL_FRAMES: [&[u8]; 5] = [
    include_bytes!("../../corpus/frames/kernel-syn.bin"),
    include_bytes!("../../corpus/frames/kernel-syn-ack.bin"),
    include_bytes!("../../corpus/frames/kernel-data.bin"),
    include_bytes!("../../corpus/frames/kernel-fin.bin"),
    include_bytes!("../../corpus/frames/kernel-rst.bin"),
];

/// Seeds for a target: for `wire`, each frame; for `iface`, the captured
/// conversation as one input (with and without number fix-ups), over
/// IPv4 as captured and carried over to IPv6; for
/// `live`, a few op sequences in each state; for `percore`, handlers that
/// send, read in pieces and close, on a clean and a lossy link.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "wire" => KERNEL_FRAMES.iter().map(|f| f.to_vec()).collect(),
        "iface" => {
            let v6: Vec<Vec<u8>> = KERNEL_FRAMES.iter().map(|f| iface::as_ipv6(f)).collect();
            let v6: Vec<&[u8]> = v6.iter().map(Vec::as_slice).collect();
            vec![
                iface::encode(&KERNEL_FRAMES, 0),
                iface::encode(&KERNEL_FRAMES, 0b111),
                iface::encode(&v6, 0),
                iface::encode(&v6, 0b111),
            ]
        }
        "percore" => (0u8..4)
            .map(|link| {
                let side = [5u8, 200, 0, 3, 2, 5, 255, 0, 9, 4, 2, 6, 2, 2, 2, 2];
                let mut v = vec![link];
                v.extend(side.iter().cycle().take(64));
                v.extend(side.iter().rev().cycle().take(64));
                v
            })
            .collect(),
        _ => (0u8..11)
            .flat_map(|state| {
                [
                    vec![state, 0, 0x18, 0, 0, 0, 0, 5],
                    vec![state, 0, 0x11, 1, 0, 1, 0, 0, 2, 3, 0x10, 0, 2, 0, 0, 9],
                ]
            })
            .collect(),
    }
}
