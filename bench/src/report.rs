//! What a benchmark run found: figures (one per scenario, pairing and
//! metric, with every round's value), percentile tables, ratios, and the
//! machine; printed as a terminal table, written as JSON and Markdown.

use apps::json::JsonLine;
use hdrhistogram::Histogram;

pub struct Figure {
    pub scenario: String,
    pub pairing: String,
    pub metric: String,
    pub unit: String,
    pub rounds: Vec<f64>,
}

impl Figure {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.rounds.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// A ratio of ours to the kernel's, the median of per-round ratios.
pub struct Ratio {
    pub name: String,
    pub value: f64,
    /// What it divides by what, and which way is better.
    pub how: String,
}

#[derive(Default)]
pub struct Report {
    pub machine: Vec<(String, String)>,
    pub figures: Vec<Figure>,
    pub ratios: Vec<Ratio>,
    /// Latency distributions, by name (scenario/pairing).
    pub latencies: Vec<(String, Histogram<u64>)>,
    /// Our bulk sender over time: (seconds, cwnd bytes, srtt us).
    pub trace: Vec<(f64, u32, f64)>,
    /// Scenarios that could not run, and why.
    pub failures: Vec<(String, String)>,
}

pub const QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (1.0, "max"),
];

impl Report {
    /// Adds one round's value to a figure (creating it on first use).
    /// Sets the machine fact `key` (replacing one of that name).
    pub fn set_machine(&mut self, key: &str, value: String) {
        match self.machine.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => self.machine.push((key.to_string(), value)),
        }
    }

    pub fn add(&mut self, scenario: &str, pairing: &str, metric: &str, unit: &str, v: f64) {
        match self
            .figures
            .iter_mut()
            .find(|f| f.scenario == scenario && f.pairing == pairing && f.metric == metric)
        {
            Some(f) => f.rounds.push(v),
            None => self.figures.push(Figure {
                scenario: scenario.into(),
                pairing: pairing.into(),
                metric: metric.into(),
                unit: unit.into(),
                rounds: vec![v],
            }),
        }
    }

    pub fn figure(&self, scenario: &str, pairing: &str, metric: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.scenario == scenario && f.pairing == pairing && f.metric == metric)
    }

    /// Median over rounds of ours / theirs, for figures with equal rounds.
    pub fn ratio(
        &mut self,
        name: &str,
        ours: (&str, &str, &str),
        theirs: (&str, &str, &str),
        how: &str,
    ) {
        let (Some(a), Some(b)) = (
            self.figure(ours.0, ours.1, ours.2),
            self.figure(theirs.0, theirs.1, theirs.2),
        ) else {
            return;
        };
        let per_round: Vec<f64> = a
            .rounds
            .iter()
            .zip(b.rounds.iter().cycle())
            .map(|(x, y)| x / y)
            .collect();
        let f = Figure {
            scenario: String::new(),
            pairing: String::new(),
            metric: String::new(),
            unit: String::new(),
            rounds: per_round,
        };
        self.ratios.push(Ratio {
            name: name.into(),
            value: f.median(),
            how: how.into(),
        });
    }

    fn scenarios(&self) -> Vec<&str> {
        let mut s: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !s.contains(&f.scenario.as_str()) {
                s.push(&f.scenario);
            }
        }
        s
    }

    /// The terminal and Markdown table: one row per scenario and metric,
    /// one column per pairing, median [min-max] over rounds.
    pub fn table(&self, markdown: bool) -> String {
        let mut used: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !used.contains(&f.pairing.as_str()) {
                used.push(&f.pairing);
            }
        }
        let mut out = String::new();
        let cell = |f: Option<&Figure>| match f {
            None => "-".to_string(),
            Some(f) if f.rounds.len() == 1 => fmt_num(f.median()),
            Some(f) => format!(
                "{} [{}-{}]",
                fmt_num(f.median()),
                fmt_num(f.min()),
                fmt_num(f.max())
            ),
        };
        // The scenario column as wide as its longest name.
        let scenarios = self.scenarios();
        let width = scenarios.iter().map(|s| s.len()).max().unwrap_or(0).max(22);
        if markdown {
            out += &format!("| scenario | metric | {} |\n", used.join(" | "));
            out += &format!("|---|---|{}\n", "---|".repeat(used.len()));
        } else {
            out += &format!("{:<w$} {:<22}", "scenario", "metric", w = width);
            for p in &used {
                out += &format!(" {p:>26}");
            }
            out += "\n";
        }
        for s in scenarios {
            let mut metrics: Vec<(&str, &str)> = Vec::new();
            for f in self.figures.iter().filter(|f| f.scenario == s) {
                if !metrics.iter().any(|m| m.0 == f.metric) {
                    metrics.push((&f.metric, &f.unit));
                }
            }
            for (m, unit) in metrics {
                let label = format!("{m} ({unit})");
                let cells: Vec<String> = used.iter().map(|p| cell(self.figure(s, p, m))).collect();
                if markdown {
                    out += &format!("| {s} | {label} | {} |\n", cells.join(" | "));
                } else {
                    out += &format!("{s:<width$} {label:<22}");
                    for c in cells {
                        out += &format!(" {c:>26}");
                    }
                    out += "\n";
                }
            }
        }
        if !self.ratios.is_empty() {
            out += if markdown {
                "\n| ratio | value | meaning |\n|---|---|---|\n"
            } else {
                "\nratios (median of per-round ratios)\n"
            };
            // One column for the names, as wide as the longest.
            let w = self.ratios.iter().map(|r| r.name.len()).max().unwrap_or(0);
            for r in &self.ratios {
                if markdown {
                    out += &format!("| {} | {:.3} | {} |\n", r.name, r.value, r.how);
                } else {
                    out += &format!("  {:<w$} {:>8.3}   {}\n", r.name, r.value, r.how);
                }
            }
        }
        for (what, why) in &self.failures {
            out += &format!("{}FAILED {what}: {why}\n", if markdown { "\n" } else { "" });
        }
        out
    }

    pub fn json(&self) -> String {
        let mut root = JsonLine::new();
        let mut m = JsonLine::new();
        for (k, v) in &self.machine {
            m.str(k, v);
        }
        root.raw("machine", &m.finish());
        let figures: Vec<String> = self
            .figures
            .iter()
            .map(|f| {
                let rounds: Vec<String> = f.rounds.iter().map(|v| json_num(*v)).collect();
                JsonLine::new()
                    .str("scenario", &f.scenario)
                    .str("pairing", &f.pairing)
                    .str("metric", &f.metric)
                    .str("unit", &f.unit)
                    .f64("median", f.median())
                    .f64("min", f.min())
                    .f64("max", f.max())
                    .raw("rounds", &format!("[{}]", rounds.join(",")))
                    .finish()
            })
            .collect();
        root.raw("figures", &format!("[{}]", figures.join(",")));
        let mut r = JsonLine::new();
        for ratio in &self.ratios {
            r.f64(&ratio.name, ratio.value);
        }
        root.raw("ratios", &r.finish());
        let lat: Vec<String> = self
            .latencies
            .iter()
            .map(|(name, h)| {
                let mut j = JsonLine::new();
                j.str("name", name).u64("count", h.len());
                for (q, label) in QUANTILES {
                    j.f64(&format!("{label}_us"), h.value_at_quantile(q) as f64 / 1e3);
                }
                j.finish()
            })
            .collect();
        root.raw("latency", &format!("[{}]", lat.join(",")));
        let failures: Vec<String> = self
            .failures
            .iter()
            .map(|(w, e)| JsonLine::new().str("what", w).str("error", e).finish())
            .collect();
        root.raw("failures", &format!("[{}]", failures.join(",")));
        root.finish()
    }

    /// Percentiles of every latency distribution, one row each.
    pub fn latency_table(&self, markdown: bool) -> String {
        let mut out = String::new();
        if markdown {
            out += "| distribution | count |";
            for (_, l) in QUANTILES {
                out += &format!(" {l} us |");
            }
            out += "\n|---|---|";
            out += &"---|".repeat(QUANTILES.len());
            out += "\n";
        } else {
            out += &format!("{:<34} {:>9}", "latency", "count");
            for (_, l) in QUANTILES {
                out += &format!(" {:>10}", format!("{l} us"));
            }
            out += "\n";
        }
        for (name, h) in &self.latencies {
            if markdown {
                out += &format!("| {name} | {} |", h.len());
            } else {
                out += &format!("{name:<34} {:>9}", h.len());
            }
            for (q, _) in QUANTILES {
                let v = fmt_num(h.value_at_quantile(q) as f64 / 1e3);
                if markdown {
                    out += &format!(" {v} |");
                } else {
                    out += &format!(" {v:>10}");
                }
            }
            out += "\n";
        }
        out
    }
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// Three significant digits, no exponent for ordinary magnitudes.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_values_line_up_whatever_the_names_length() {
        let mut r = Report::default();
        for name in ["short", "a_ratio_name_longer_than_thirty_characters"] {
            r.ratios.push(Ratio {
                name: name.into(),
                value: 1.5,
                how: "why".into(),
            });
        }
        let text = r.table(false);
        let at: Vec<usize> = text.lines().filter_map(|l| l.find("1.500")).collect();
        assert_eq!(at.len(), 2, "{text}");
        assert_eq!(at[0], at[1], "{text}");
    }
}
