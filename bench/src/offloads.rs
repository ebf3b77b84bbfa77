//! A host's interface offloads for a run across two hosts: off (checksum,
//! TSO, GSO, GRO: the kernel sends and receives MTU-sized frames, as the
//! single-machine bed has it) for every pairing but the kernel's
//! "-offload" one, and back to what they were afterwards. With `ethtool`,
//! in the calling thread's namespace.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;

/// `ethtool -K` names and the `ethtool -k` lines that show them.
const FEATURES: [(&str, &str); 5] = [
    ("rx", "rx-checksumming"),
    ("tx", "tx-checksumming"),
    ("tso", "tcp-segmentation-offload"),
    ("gso", "generic-segmentation-offload"),
    ("gro", "generic-receive-offload"),
];

/// Features by their `ethtool -K` name, each on or off.
type States = Vec<(&'static str, bool)>;

/// What each interface had before we turned its offloads off.
static SAVED: Mutex<Vec<(String, States)>> = Mutex::new(Vec::new());

fn ethtool(args: &[&str]) -> Result<String, String> {
    let o = Command::new("ethtool")
        .args(args)
        .output()
        .map_err(|e| format!("ethtool: {e} (install it: apt-get install ethtool)"))?;
    if !o.status.success() {
        return Err(format!(
            "ethtool {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The features' current states, from `ethtool -k` text.
fn parse(text: &str) -> States {
    let states: HashMap<&str, bool> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim_start().starts_with("on")))
        .collect();
    FEATURES
        .iter()
        .filter_map(|(short, long)| states.get(long).map(|&on| (*short, on)))
        .collect()
}

/// Offloads of `dev` off (`off`), or back as they were before the first
/// `set(dev, true)`.
pub fn set(dev: &str, off: bool) -> Result<(), String> {
    let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
    let at = saved.iter().position(|(d, _)| d == dev);
    let want: Vec<(&str, bool)> = match (off, at) {
        (true, _) => {
            if at.is_none() {
                let now = parse(&ethtool(&["-k", dev])?);
                saved.push((dev.to_string(), now));
            }
            FEATURES.iter().map(|(f, _)| (*f, false)).collect()
        }
        (false, Some(i)) => saved.remove(i).1,
        (false, None) => return Ok(()),
    };
    let mut args = vec!["-K", dev];
    for (f, on) in &want {
        args.extend([*f, if *on { "on" } else { "off" }]);
    }
    // Some features are fixed on some devices: what could not change is
    // said, and the run goes on (the report names the offloads asked for).
    if let Err(e) = ethtool(&args) {
        eprintln!("xdptcp-bench: {e}");
    }
    Ok(())
}

/// Every interface this process turned offloads off on, back as it was
/// (at the end of a run, or on the way out after a failure).
pub fn restore_all() {
    let devs: Vec<String> = SAVED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(d, _)| d.clone())
        .collect();
    for d in devs {
        if let Err(e) = set(&d, false) {
            eprintln!("xdptcp-bench: restoring offloads on {d}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_states_ethtool_shows() {
        let text = "Features for eth0:\nrx-checksumming: on\ntx-checksumming: off\n\
                    tcp-segmentation-offload: on\n\ttx-tcp-segmentation: on\n\
                    generic-segmentation-offload: off [requested on]\n\
                    generic-receive-offload: on [fixed]\n";
        assert_eq!(
            super::parse(text),
            vec![
                ("rx", true),
                ("tx", false),
                ("tso", true),
                ("gso", false),
                ("gro", true)
            ]
        );
    }
}
