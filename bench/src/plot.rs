//! The report's plots, each as SVG and PNG (plotters): goodput bars per
//! pairing, latency percentile curves, and our bulk sender's cwnd and RTT
//! over time. Text needs a TrueType font (DejaVu Sans, installed by
//! scripts/deps.sh); without one the plots are skipped with a message.

use crate::report::Report;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn register_font() -> Result<(), String> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or("no DejaVu Sans font (apt-get install fonts-dejavu-core): plots skipped")?;
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    // plotters keeps the font for the life of the program.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{path}: not a usable font"))
}

type Draw<'a> = dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String> + 'a;
type TraceValue = dyn Fn(&(f64, u32, f64)) -> f64;
type DrawSvg<'a> = dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<(), String> + 'a;

/// Writes `name`.svg and `name`.png in `dir`; returns the paths.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<String>, String> {
    register_font()?;
    let mut written = Vec::new();
    let goodput = goodput_series(report);
    if !goodput.is_empty() {
        written.extend(both(dir, "goodput", &|a| bars(a, &goodput), &|a| {
            bars(a, &goodput)
        })?);
    }
    // One percentile plot per scenario ("64K chunk in bulk", "rr 64 B").
    for (scenario, series) in latency_groups(report) {
        let name = format!("latency-{}", slug(&scenario));
        written.extend(both(
            dir,
            &name,
            &|a| percentiles(a, &scenario, &series),
            &|a| percentiles(a, &scenario, &series),
        )?);
    }
    if !report.trace.is_empty() {
        written.extend(both(dir, "bulk-trace", &|a| trace(a, report), &|a| {
            trace(a, report)
        })?);
    }
    Ok(written)
}

fn both(dir: &Path, name: &str, png: &Draw, svg: &DrawSvg) -> Result<Vec<String>, String> {
    let (p, s) = (
        dir.join(format!("{name}.png")),
        dir.join(format!("{name}.svg")),
    );
    {
        let area = BitMapBackend::new(&p, (1000, 500)).into_drawing_area();
        area.fill(&WHITE).map_err(|e| e.to_string())?;
        png(&area)?;
        area.present()
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    {
        let area = SVGBackend::new(&s, (1000, 500)).into_drawing_area();
        area.fill(&WHITE).map_err(|e| e.to_string())?;
        svg(&area)?;
        area.present()
            .map_err(|e| format!("{}: {e}", s.display()))?;
    }
    Ok(vec![p.display().to_string(), s.display().to_string()])
}

/// (category, [(pairing, Mbit/s)]) for the goodput figures.
fn goodput_series(r: &Report) -> Vec<(String, Vec<(String, f64)>)> {
    let mut out: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for f in r.figures.iter().filter(|f| f.unit == "Mbit/s") {
        let cat = format!("{} {}", f.scenario, f.metric.replace("goodput", "").trim());
        match out.iter_mut().find(|c| c.0 == cat) {
            Some(c) => c.1.push((f.pairing.clone(), f.median())),
            None => out.push((cat, vec![(f.pairing.clone(), f.median())])),
        }
    }
    out
}

fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &[(String, Vec<(String, f64)>)],
) -> Result<(), String> {
    let mut pairings: Vec<&str> = Vec::new();
    for (_, v) in data {
        for (p, _) in v {
            if !pairings.contains(&p.as_str()) {
                pairings.push(p);
            }
        }
    }
    let top = data
        .iter()
        .flat_map(|c| c.1.iter().map(|x| x.1))
        .fold(1.0, f64::max)
        * 1.15;
    let n = data.len();
    let mut chart = ChartBuilder::on(area)
        .caption("goodput, median of rounds (Mbit/s)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            data.get(i).map(|c| c.0.clone()).unwrap_or_default()
        })
        .y_desc("Mbit/s")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let width = 0.8 / pairings.len().max(1) as f64;
    for (k, p) in pairings.iter().enumerate() {
        let color = pairing_style(p, k).0;
        let rects: Vec<_> = data
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.1.iter().find(|x| x.0 == *p).map(|x| {
                    let x0 = i as f64 + 0.1 + k as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, x.1)], color.filled())
                })
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(|e| e.to_string())?
            .label(*p)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

type Series<'a> = Vec<(&'a str, &'a hdrhistogram::Histogram<u64>)>;

/// The latency distributions by scenario: "64K chunk in bulk, xdptcp-kernel"
/// goes to "64K chunk in bulk" as "xdptcp-kernel".
fn latency_groups(r: &Report) -> Vec<(String, Series<'_>)> {
    let mut out: Vec<(String, Series<'_>)> = Vec::new();
    for (name, h) in &r.latencies {
        let (scenario, pairing) = name.rsplit_once(", ").unwrap_or((name.as_str(), ""));
        match out.iter_mut().find(|g| g.0 == scenario) {
            Some(g) => g.1.push((pairing, h)),
            None => out.push((scenario.to_string(), vec![(pairing, h)])),
        }
    }
    out
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Every pairing has its own colour in every plot; the kernel's lines are
/// dashed, ours solid.
const PAIRINGS: [&str; 7] = [
    "kernel-kernel",
    "kernel-kernel-spin",
    "kernel-kernel-lowat",
    "kernel-kernel-offload",
    "xdptcp-kernel",
    "xdptcp-xdptcp",
    "device",
];
const PAIRING_COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

fn pairing_style(p: &str, k: usize) -> (RGBColor, bool) {
    let color = PAIRINGS
        .iter()
        .position(|x| *x == p)
        .map_or(PAIRING_COLORS[k % PAIRING_COLORS.len()], |i| {
            PAIRING_COLORS[i]
        });
    (color, p.starts_with("kernel"))
}

/// One scenario's latency (log) against percentile on the 1/(1-q) axis
/// (log), with the legend beside the plot, not over the curves.
fn percentiles<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scenario: &str,
    series: &Series<'_>,
) -> Result<(), String> {
    let (plot, legend) = area.split_horizontally(680);
    let max_us = series
        .iter()
        .map(|(_, h)| h.max() as f64 / 1e3)
        .fold(1.0, f64::max);
    let min_us = series
        .iter()
        .map(|(_, h)| h.min().max(1) as f64 / 1e3)
        .fold(f64::MAX, f64::min)
        .min(max_us);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            format!("{scenario}: latency by percentile"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0f64..100_000.0).log_scale(),
            (min_us * 0.8..max_us * 1.25).log_scale(),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("us")
        .x_label_formatter(&|x| {
            let q = 100.0 * (1.0 - 1.0 / x);
            format!("{q:.3}%").replace(".000%", "%")
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, (pairing, h)) in series.iter().enumerate() {
        let (color, dashed) = pairing_style(pairing, k);
        let pts: Vec<(f64, f64)> = h
            .iter_quantiles(5)
            .map(|v| {
                let q = v.quantile_iterated_to().min(0.99999);
                (1.0 / (1.0 - q), (v.value_iterated_to().max(1) as f64) / 1e3)
            })
            .collect();
        let style = color.stroke_width(2);
        if dashed {
            chart.draw_series(DashedLineSeries::new(pts, 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(pts, style))
        }
        .map_err(|e| e.to_string())?;
        // The legend: a sample of the line and the pairing, in its own area.
        let y = 60 + 28 * k as i32;
        let sample: Vec<(i32, i32)> = if dashed {
            vec![(10, y), (18, y), (24, y), (32, y)]
        } else {
            vec![(10, y), (32, y)]
        };
        if dashed {
            for seg in sample.chunks(2) {
                legend
                    .draw(&PathElement::new(seg.to_vec(), style))
                    .map_err(|e| e.to_string())?;
            }
        } else {
            legend
                .draw(&PathElement::new(sample, style))
                .map_err(|e| e.to_string())?;
        }
        legend
            .draw_text(
                &format!("{pairing} ({} samples)", h.len()),
                &("sans-serif", 13).into_text_style(&legend),
                (40, y - 7),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Our bulk sender's cwnd (KiB) and smoothed RTT (us) over time.
fn trace<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &Report) -> Result<(), String> {
    let (upper, lower) = area.split_vertically(250);
    let t_max = r.trace.iter().map(|x| x.0).fold(0.1, f64::max);
    let series: [(&DrawingArea<DB, Shift>, &str, &TraceValue); 2] = [
        (&upper, "cwnd (KiB)", &|x| f64::from(x.1) / 1024.0),
        (&lower, "smoothed RTT (us)", &|x| x.2),
    ];
    for (k, (a, label, f)) in series.iter().enumerate() {
        let top = r.trace.iter().map(f).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(a)
            .caption(format!("xdptcp bulk sender: {label}"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("s")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                r.trace.iter().map(|x| (x.0, f(x))),
                PAIRING_COLORS[5 + k].stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
