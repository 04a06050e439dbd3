//! Results and their presentation: Markdown tables (both systems side by side with the
//! ratio) and a hand-written SVG chart of latency and initial-sync throughput.

use std::fmt::Write as _;

/// Which two daemons a run paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Stock Syncthing on both sides.
    SyncthingPair,
    /// syncd on both sides.
    SyncdPair,
    /// syncd on the changing (sending) side, Syncthing receiving.
    SyncdToSyncthing,
    /// Syncthing on the changing (sending) side, syncd receiving.
    SyncthingToSyncd,
}

impl Pairing {
    /// Column order of the tables.
    pub const ALL: [Pairing; 4] = [
        Pairing::SyncthingPair,
        Pairing::SyncdPair,
        Pairing::SyncdToSyncthing,
        Pairing::SyncthingToSyncd,
    ];

    /// Column heading.
    pub fn label(self) -> &'static str {
        match self {
            Pairing::SyncthingPair => "Syncthing↔Syncthing",
            Pairing::SyncdPair => "syncd↔syncd",
            Pairing::SyncdToSyncthing => "syncd→Syncthing",
            Pairing::SyncthingToSyncd => "Syncthing→syncd",
        }
    }
}

/// How a metric's value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds of wall or CPU time.
    Seconds,
    /// Megabytes (10^6) per second.
    MegabytesPerSecond,
    /// A byte count (memory or data).
    Bytes,
    /// A plain count.
    Count,
    /// A load average (runnable threads, one decimal; never given a ratio).
    Load,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Row heading, the same across pairings.
    pub name: String,
    /// How to show it.
    pub unit: Unit,
    /// The value in the unit's base (seconds, MB/s, bytes, items).
    pub value: f64,
}

impl Metric {
    /// A metric.
    pub fn new(name: impl Into<String>, unit: Unit, value: f64) -> Self {
        Metric {
            name: name.into(),
            unit,
            value,
        }
    }
}

/// One pairing's outcome in a scenario: its figures, or why there are none.
pub type Outcome = Result<Vec<Metric>, String>;

/// One scenario's results.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// Heading, e.g. "1. Initial sync".
    pub title: String,
    /// What is measured and how.
    pub about: String,
    /// Remarks printed under the table (page cache not dropped, sample counts, ...).
    pub notes: Vec<String>,
    /// Outcomes per pairing that was run.
    pub results: Vec<(Pairing, Outcome)>,
}

/// Formats a value in its unit.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Seconds if v < 1.0 => format!("{:.0} ms", v * 1000.0),
        Unit::Seconds if v < 10.0 => format!("{v:.2} s"),
        Unit::Seconds => format!("{v:.1} s"),
        Unit::MegabytesPerSecond => format!("{v:.1} MB/s"),
        Unit::Bytes if v < 1e3 => format!("{v:.0} B"),
        Unit::Bytes if v < 1e6 => format!("{:.1} kB", v / 1e3),
        Unit::Bytes if v < 1e9 => format!("{:.1} MB", v / 1e6),
        Unit::Bytes => format!("{:.2} GB", v / 1e9),
        Unit::Count => format!("{v:.0}"),
        Unit::Load => format!("{v:.1}"),
    }
}

fn cell_text(s: &str) -> String {
    let first = s.lines().next().unwrap_or_default();
    let short: String = if first.chars().count() > 120 {
        first.chars().take(117).chain("...".chars()).collect()
    } else {
        first.to_string()
    };
    short.replace('|', "\\|")
}

/// The Markdown section of one scenario: a table with a row per metric and a column per
/// pairing, plus syncd/Syncthing as a ratio of the two pairs when both have the figure.
pub fn scenario_markdown(s: &Scenario) -> String {
    let mut out = format!("## {}\n\n{}\n\n", s.title, s.about);
    let mut rows: Vec<(String, Unit)> = Vec::new();
    for (_, outcome) in &s.results {
        for m in outcome.iter().flatten() {
            if !rows.iter().any(|(n, _)| *n == m.name) {
                rows.push((m.name.clone(), m.unit));
            }
        }
    }
    let cols: Vec<Pairing> = Pairing::ALL
        .into_iter()
        .filter(|p| s.results.iter().any(|(q, _)| q == p))
        .collect();
    let outcome = |p: Pairing| s.results.iter().find(|(q, _)| *q == p).map(|(_, o)| o);
    let value = |p: Pairing, name: &str| -> Option<f64> {
        outcome(p)?
            .as_ref()
            .ok()?
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    let with_ratio = cols.contains(&Pairing::SyncthingPair) && cols.contains(&Pairing::SyncdPair);
    out.push_str("| Metric |");
    for c in &cols {
        let _ = write!(out, " {} |", c.label());
        if *c == Pairing::SyncdPair && with_ratio {
            out.push_str(" syncd/Syncthing |");
        }
    }
    out.push_str("\n|---|");
    for c in &cols {
        out.push_str("---:|");
        if *c == Pairing::SyncdPair && with_ratio {
            out.push_str("---:|");
        }
    }
    out.push('\n');
    if rows.is_empty() {
        rows.push(("(no figures)".to_string(), Unit::Count));
    }
    for (name, unit) in &rows {
        let _ = write!(out, "| {} |", cell_text(name));
        for c in &cols {
            let cell = match outcome(*c) {
                Some(Err(reason)) => cell_text(reason),
                _ => value(*c, name)
                    .map(|v| format_value(*unit, v))
                    .unwrap_or_else(|| "—".to_string()),
            };
            let _ = write!(out, " {cell} |");
            if *c == Pairing::SyncdPair && with_ratio {
                let ratio = match (
                    value(Pairing::SyncdPair, name),
                    value(Pairing::SyncthingPair, name),
                ) {
                    _ if *unit == Unit::Load => "—".to_string(),
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "—".to_string(),
                };
                let _ = write!(out, " {ratio} |");
            }
        }
        out.push('\n');
    }
    for (p, o) in &s.results {
        if let Err(reason) = o
            && (reason.lines().count() > 1 || reason.chars().count() > 120)
        {
            let _ = write!(out, "\n{}: {}\n", p.label(), reason.trim());
        }
    }
    if !s.notes.is_empty() {
        out.push('\n');
        for n in &s.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out.push('\n');
    out
}

/// The whole report: a preamble (machine, command, workspace) and every scenario.
pub fn report_markdown(preamble: &[String], scenarios: &[Scenario]) -> String {
    let mut out = String::from("# syncd vs Syncthing: whole-system benchmark\n\n");
    for line in preamble {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');
    for s in scenarios {
        out.push_str(&scenario_markdown(s));
    }
    out
}

/// The `q`-quantile (0..=1) of `samples` by the nearest-rank method; `None` when empty.
pub fn percentile(samples: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    v.get(rank.saturating_sub(1).min(v.len() - 1)).copied()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG chart: latency samples per series on a log time axis (dots, with p50 and p99
/// marks), and initial-sync throughput per pairing as bars (`None` = not measured).
pub fn chart_svg(latency: &[(String, Vec<f64>)], throughput: &[(String, Option<f64>)]) -> String {
    const W: f64 = 900.0;
    const LEFT: f64 = 340.0;
    const RIGHT: f64 = 30.0;
    const ROW: f64 = 34.0;
    let plot_w = W - LEFT - RIGHT;
    let lat_top = 60.0;
    let lat_h = ROW * latency.len().max(1) as f64;
    let thr_top = lat_top + lat_h + 100.0;
    let thr_h = ROW * throughput.len().max(1) as f64;
    let h = thr_top + thr_h + 50.0;
    // Log axis from 1 ms to 100 s.
    let (lo, hi) = (1e-3f64.log10(), 100f64.log10());
    let x_of = |s: f64| LEFT + (s.clamp(1e-3, 100.0).log10() - lo) / (hi - lo) * plot_w;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="24" font-size="16" font-weight="bold">Propagation latency (log scale; dots = samples, | p50, ‖ p99)</text>"#
    );
    for (t, label) in [
        (1e-3, "1 ms"),
        (1e-2, "10 ms"),
        (0.1, "100 ms"),
        (1.0, "1 s"),
        (10.0, "10 s"),
        (100.0, "100 s"),
    ] {
        let x = x_of(t);
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{lat_top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            lat_top + lat_h,
            lat_top + lat_h + 16.0
        );
    }
    let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    for (i, (label, samples)) in latency.iter().enumerate() {
        let y = lat_top + ROW * i as f64 + ROW / 2.0;
        let c = colours.get(i % colours.len()).copied().unwrap_or("#000");
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            esc(label)
        );
        for s in samples {
            let _ = writeln!(
                o,
                r#"<circle cx="{:.1}" cy="{y:.1}" r="3" fill="{c}" fill-opacity="0.5"/>"#,
                x_of(*s)
            );
        }
        for (q, width) in [(0.5, 2.0), (0.99, 4.0)] {
            if let Some(p) = percentile(samples, q) {
                let x = x_of(p);
                let _ = writeln!(
                    o,
                    r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{c}" stroke-width="{width}"/>"#,
                    y - 11.0,
                    y + 11.0
                );
            }
        }
        if samples.is_empty() {
            let _ = writeln!(
                o,
                r##"<text x="{:.1}" y="{:.1}" fill="#888">not measured</text>"##,
                LEFT + 4.0,
                y + 4.0
            );
        }
    }
    let _ = writeln!(
        o,
        r#"<text x="10" y="{:.1}" font-size="16" font-weight="bold">Initial-sync throughput (MB/s)</text>"#,
        thr_top - 20.0
    );
    let max = throughput
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(1.0f64, f64::max);
    for (i, (label, v)) in throughput.iter().enumerate() {
        let y = thr_top + ROW * i as f64;
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + ROW / 2.0 + 4.0,
            esc(label)
        );
        match v {
            Some(v) => {
                let w = (v / max * (plot_w - 80.0)).max(1.0);
                let _ = writeln!(
                    o,
                    r##"<rect x="{LEFT}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="#1f77b4"/><text x="{:.1}" y="{:.1}">{v:.1}</text>"##,
                    y + 6.0,
                    ROW - 12.0,
                    LEFT + w + 6.0,
                    y + ROW / 2.0 + 4.0
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    r##"<text x="{LEFT}" y="{:.1}" fill="#888">not measured</text>"##,
                    y + ROW / 2.0 + 4.0
                );
            }
        }
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(results: Vec<(Pairing, Outcome)>) -> Scenario {
        Scenario {
            title: "1. Initial sync".into(),
            about: "About.".into(),
            notes: vec![],
            results,
        }
    }

    #[test]
    fn table_puts_pairs_side_by_side_with_their_ratio() {
        let s = scenario(vec![
            (
                Pairing::SyncthingPair,
                Ok(vec![
                    Metric::new("wall time", Unit::Seconds, 70.0),
                    Metric::new("peak RSS", Unit::Bytes, 265e6),
                ]),
            ),
            (
                Pairing::SyncdPair,
                Ok(vec![
                    Metric::new("wall time", Unit::Seconds, 7.0),
                    Metric::new("peak RSS", Unit::Bytes, 40e6),
                ]),
            ),
        ]);
        let md = scenario_markdown(&s);
        assert!(
            md.contains("| Metric | Syncthing↔Syncthing | syncd↔syncd | syncd/Syncthing |"),
            "{md}"
        );
        assert!(
            md.contains("| wall time | 70.0 s | 7.00 s | 0.10× |"),
            "{md}"
        );
        assert!(
            md.contains("| peak RSS | 265.0 MB | 40.0 MB | 0.15× |"),
            "{md}"
        );
    }

    #[test]
    fn load_average_rows_get_no_ratio() {
        let load = |v| Ok(vec![Metric::new("load average", Unit::Load, v)]);
        let s = scenario(vec![
            (Pairing::SyncthingPair, load(12.0)),
            (Pairing::SyncdPair, load(6.0)),
        ]);
        let md = scenario_markdown(&s);
        assert!(md.contains("| load average | 12.0 | 6.0 | — |"), "{md}");
    }

    #[test]
    fn unavailable_syncd_shows_the_reason_instead_of_numbers() {
        let reason = "syncd daemon not available: no binary at target/release/syncd";
        let s = scenario(vec![
            (
                Pairing::SyncthingPair,
                Ok(vec![Metric::new("wall time", Unit::Seconds, 0.5)]),
            ),
            (Pairing::SyncdPair, Err(reason.into())),
            (Pairing::SyncdToSyncthing, Err(reason.into())),
        ]);
        let md = scenario_markdown(&s);
        assert!(
            md.contains(&format!("| wall time | 500 ms | {reason} | — | {reason} |")),
            "{md}"
        );
    }

    #[test]
    fn a_metric_missing_from_one_pairing_is_a_dash() {
        let s = scenario(vec![
            (
                Pairing::SyncthingPair,
                Ok(vec![Metric::new("p50 at 1 s delay", Unit::Seconds, 1.1)]),
            ),
            (
                Pairing::SyncdPair,
                Ok(vec![Metric::new("p50", Unit::Seconds, 0.05)]),
            ),
        ]);
        let md = scenario_markdown(&s);
        assert!(md.contains("| p50 at 1 s delay | 1.10 s | — | — |"), "{md}");
        assert!(md.contains("| p50 | — | 50 ms | — |"), "{md}");
    }

    #[test]
    fn values_are_formatted_in_their_unit() {
        let cases = [
            (Unit::Seconds, 0.0423, "42 ms"),
            (Unit::Seconds, 9.05, "9.05 s"),
            (Unit::Seconds, 381.0, "381.0 s"),
            (Unit::MegabytesPerSecond, 15.04, "15.0 MB/s"),
            (Unit::Bytes, 512.0, "512 B"),
            (Unit::Bytes, 1_500.0, "1.5 kB"),
            (Unit::Bytes, 48_000_000.0, "48.0 MB"),
            (Unit::Bytes, 1_230_000_000.0, "1.23 GB"),
            (Unit::Count, 20_000.0, "20000"),
            (Unit::Load, 13.46, "13.5"),
        ];
        for (unit, v, want) in cases {
            assert_eq!(format_value(unit, v), want, "{unit:?} {v}");
        }
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn chart_is_one_svg_with_escaped_labels_and_every_series() {
        let svg = chart_svg(
            &[
                ("Syncthing <10 s>".into(), vec![9.1, 9.5]),
                ("syncd".into(), vec![]),
            ],
            &[
                ("Syncthing↔Syncthing".into(), Some(15.0)),
                ("syncd↔syncd".into(), None),
            ],
        );
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Syncthing &lt;10 s&gt;") && !svg.contains("<10 s>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(svg.matches("not measured").count(), 2);
    }
}
