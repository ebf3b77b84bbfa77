//! Sizes and rates as people type and read them.

/// Parses a byte count: `65536`, `64K`, `64M`, `1G`, `64MiB` (binary units;
/// a trailing `B`/`iB` is allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64K, 64M, 1G)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("'{s}' is not a size"));
    }
    let bytes = n * mult as f64;
    if bytes > (1u64 << 50) as f64 {
        return Err(format!("'{s}' is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a bound on unsent bytes: `auto`, `off` (or `none`), or a size
/// as `parse_size` reads it.
pub fn parse_unsent_limit(s: &str) -> Result<xdptcp::api::config::UnsentLimit, String> {
    use xdptcp::api::config::UnsentLimit;
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(UnsentLimit::Auto),
        "off" | "none" => Ok(UnsentLimit::Off),
        _ => parse_size(s)
            .map(|n| UnsentLimit::Bytes(n as usize))
            .map_err(|_| format!("'{s}': give auto, off, or a size such as 64K")),
    }
}

/// Parses a rate in bits per second: `1G`, `100M`, `2.5G`, `10000` (decimal units).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let t = lower
        .strip_suffix("bit/s")
        .or_else(|| lower.strip_suffix("bit"))
        .or_else(|| lower.strip_suffix("bps"))
        .unwrap_or(&lower);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1e3),
        Some('M' | 'm') => (&t[..t.len() - 1], 1e6),
        Some('G' | 'g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a rate (examples: 100M, 1G, 10G)"))?;
    let bps = n * mult;
    if !(1000.0..=1e13).contains(&bps) {
        return Err(format!("'{s}': rate must be between 1K and 10T bit/s"));
    }
    Ok(bps.round() as u64)
}

/// A duration: `100ms`, `1.5s`, `250us`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1e-3)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (examples: 100ms, 1.5s)"))?;
    let secs = v * scale;
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("'{s}' must be between 0 and 1 hour"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// A probability in [0, 1].
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("'{s}' is not a probability between 0 and 1"));
    }
    Ok(p)
}

/// `1536` -> `1.5 KiB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Bits per second, decimal: `1.23 Gbit/s`.
pub fn fmt_rate(bps: f64) -> String {
    let (v, u) = if bps >= 1e9 {
        (bps / 1e9, "Gbit/s")
    } else if bps >= 1e6 {
        (bps / 1e6, "Mbit/s")
    } else if bps >= 1e3 {
        (bps / 1e3, "kbit/s")
    } else {
        (bps, "bit/s")
    };
    format!("{v:.2} {u}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_limits_parse_the_forms_a_user_types() {
        use xdptcp::api::config::UnsentLimit;
        assert_eq!(parse_unsent_limit("auto"), Ok(UnsentLimit::Auto));
        assert_eq!(parse_unsent_limit("OFF"), Ok(UnsentLimit::Off));
        assert_eq!(parse_unsent_limit("65536"), Ok(UnsentLimit::Bytes(65536)));
        assert_eq!(
            parse_unsent_limit("128K"),
            Ok(UnsentLimit::Bytes(128 << 10))
        );
        assert_eq!(parse_unsent_limit("2m"), Ok(UnsentLimit::Bytes(2 << 20)));
        assert!(parse_unsent_limit("lots").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_rate("2.5Gbit/s"), Ok(2_500_000_000));
        assert_eq!(parse_rate("100M"), Ok(100_000_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("10Mbit"), Ok(10_000_000));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_millis(20)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1ms").is_err());
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0.05"), Ok(0.05));
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("-0.1").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(64 << 20), "64.0 MiB");
        assert_eq!(fmt_rate(1.234e9), "1.23 Gbit/s");
        assert_eq!(fmt_rate(5e5), "500.00 kbit/s");
    }
}
