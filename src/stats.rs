//! What the record says about learning, for `promptloop stats`: per rule (learned,
//! recurred after it was active, validated, helped) and per day (first-attempt pass rate,
//! attempts to green, failures by type and source, recurrences of failures that already
//! had a rule), and SVG charts of the daily series, written by hand.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::evidence::Verdict;
use crate::store::{RuleFilter, RuleStore, StoreError};

/// One rule's evidence.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RuleStats {
    /// Its id.
    pub id: String,
    /// The rule's text.
    pub rule: String,
    /// proposed, active, retired.
    pub status: String,
    /// Times the lesson arrived.
    pub learned: u32,
    /// Failures with its failure's fingerprint after it was active.
    pub recurred: u32,
    /// Validations run on it.
    pub validated: u32,
    /// The latest validation's verdict.
    pub verdict: Option<Verdict>,
    /// Runs that passed after learning it.
    pub helped: u32,
}

/// One day of the record.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DayStats {
    /// `YYYY-MM-DD` (local time).
    pub day: String,
    /// Runs that ended.
    pub runs: u32,
    /// Runs whose first attempt's tests passed.
    pub first_attempt_passed: u32,
    /// first_attempt_passed / runs with a first test run.
    pub first_attempt_rate: Option<f64>,
    /// Runs that ended with the tests passing.
    pub passed: u32,
    /// Mean attempts of the runs that passed.
    pub attempts_to_green: Option<f64>,
    /// Failures captured (every source).
    pub failures: u32,
    /// Failures by type.
    pub failures_by_type: BTreeMap<String, u32>,
    /// Failures that recurred while a rule learned from the same failure was active.
    pub recurrences: u32,
}

/// Totals over the whole record.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Totals {
    /// Runs that ended.
    pub runs: u32,
    /// Of those, the first attempt passed.
    pub first_attempt_passed: u32,
    /// first_attempt_passed / runs with a first test run.
    pub first_attempt_rate: Option<f64>,
    /// Runs that passed.
    pub passed: u32,
    /// Mean attempts of the runs that passed.
    pub attempts_to_green: Option<f64>,
    /// Failures captured.
    pub failures: u32,
    /// Recurrences of failures that already had a rule.
    pub recurrences: u32,
    /// Rules by status.
    pub rules_active: u32,
    /// Rules proposed.
    pub rules_proposed: u32,
    /// Rules retired.
    pub rules_retired: u32,
    /// Rules whose latest validation found them helpful.
    pub rules_helpful: u32,
    /// Rules whose latest validation found them harmful.
    pub rules_harmful: u32,
}

/// Everything `promptloop stats` shows.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Stats {
    /// Totals.
    pub totals: Totals,
    /// Failures by type.
    pub failures_by_type: BTreeMap<String, u32>,
    /// Failures by source (pytest, jest, manual, semantic, …).
    pub failures_by_source: BTreeMap<String, u32>,
    /// Each rule, oldest first.
    pub rules: Vec<RuleStats>,
    /// Each day with a run or a failure, oldest first.
    pub days: Vec<DayStats>,
}

fn day_of(stamp: &str) -> String {
    stamp.chars().take(10).collect()
}

fn mean(sum: u32, n: u32) -> Option<f64> {
    (n > 0).then(|| f64::from(sum) / f64::from(n))
}

/// Reads the statistics from a project's store.
pub fn collect(store: &dyn RuleStore) -> Result<Stats, StoreError> {
    let mut days: BTreeMap<String, DayStats> = BTreeMap::new();
    fn day<'a>(days: &'a mut BTreeMap<String, DayStats>, stamp: &str) -> &'a mut DayStats {
        let d = day_of(stamp);
        days.entry(d.clone()).or_insert_with(|| DayStats {
            day: d,
            ..DayStats::default()
        })
    }
    let mut totals = Totals::default();
    // Runs that ended: outcome, attempts, and whether the first attempt's tests passed.
    let mut first_tested = BTreeMap::<String, u32>::new();
    let mut green_attempts = BTreeMap::<String, u32>::new();
    let (mut all_first_tested, mut all_green_attempts) = (0u32, 0u32);
    let mut runs = store.runs(usize::MAX >> 1)?;
    runs.retain(|r| r.outcome.is_some());
    runs.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    for run in runs {
        let first = store
            .attempts(&run.id)?
            .into_iter()
            .find(|a| a.attempt == 1)
            .and_then(|a| a.tests_outcome);
        let s = day(&mut days, run.started_at.as_deref().unwrap_or(""));
        let d = s.day.clone();
        s.runs += 1;
        totals.runs += 1;
        if first.is_some() {
            *first_tested.entry(d.clone()).or_default() += 1;
            all_first_tested += 1;
        }
        if first.as_deref() == Some("passed") {
            s.first_attempt_passed += 1;
            totals.first_attempt_passed += 1;
        }
        if run.outcome.as_deref() == Some("passed") {
            s.passed += 1;
            totals.passed += 1;
            *green_attempts.entry(d).or_default() += run.attempts;
            all_green_attempts += run.attempts;
        }
    }
    let mut by_type = BTreeMap::new();
    let mut by_source = BTreeMap::new();
    for failure in store.failures()? {
        let c = failure.context;
        let s = day(&mut days, &c.captured_at);
        s.failures += 1;
        *s.failures_by_type
            .entry(c.failure_type.clone())
            .or_default() += 1;
        totals.failures += 1;
        *by_type.entry(c.failure_type).or_default() += 1;
        *by_source.entry(c.source).or_default() += 1;
    }
    for at in store.recurrence_times()? {
        day(&mut days, &at).recurrences += 1;
        totals.recurrences += 1;
    }
    for s in days.values_mut() {
        s.first_attempt_rate = mean(
            s.first_attempt_passed,
            first_tested.get(&s.day).copied().unwrap_or(0),
        );
        s.attempts_to_green = mean(green_attempts.get(&s.day).copied().unwrap_or(0), s.passed);
    }
    totals.first_attempt_rate = mean(totals.first_attempt_passed, all_first_tested);
    totals.attempts_to_green = mean(all_green_attempts, totals.passed);

    let validations = store.validations(None)?;
    let latest = store.verdicts()?;
    let mut rules = Vec::new();
    for r in store.list(&RuleFilter::default())? {
        let verdict = latest.get(&r.id).map(|v| v.verdict);
        match r.status {
            crate::store::Status::Active => totals.rules_active += 1,
            crate::store::Status::Proposed => totals.rules_proposed += 1,
            crate::store::Status::Retired => totals.rules_retired += 1,
        }
        match verdict {
            Some(Verdict::Helpful) => totals.rules_helpful += 1,
            Some(Verdict::Harmful) => totals.rules_harmful += 1,
            _ => {}
        }
        rules.push(RuleStats {
            validated: validations.iter().filter(|v| v.rule_id == r.id).count() as u32,
            verdict,
            id: r.id,
            rule: r.rule.rule,
            status: r.status.as_str().to_string(),
            learned: r.times_learned,
            recurred: r.recurrences,
            helped: r.times_validated,
        });
    }
    Ok(Stats {
        totals,
        failures_by_type: by_type,
        failures_by_source: by_source,
        rules,
        days: days.into_values().filter(|d| !d.day.is_empty()).collect(),
    })
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 640.0;
const H: f64 = 320.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 56.0;
const COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

/// The frame of a chart: title, axes, y grid from 0 to `y_max` with `y_fmt` labels, and
/// the x labels (every one, or every n-th when there are many).
fn frame(title: &str, x_labels: &[String], y_max: f64, y_fmt: &dyn Fn(f64) -> String) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
        W / 2.0,
        esc(title)
    );
    let plot_h = H - TOP - BOTTOM;
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = TOP + plot_h * (1.0 - f64::from(i) / 4.0);
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&y_fmt(v))
        ));
    }
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#333\"/>\n",
        H - BOTTOM
    ));
    let n = x_labels.len().max(1);
    let step = n.div_ceil(10);
    for (i, label) in x_labels.iter().enumerate() {
        if i % step != 0 {
            continue;
        }
        let x = x_at(i, n);
        s.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"end\" transform=\"rotate(-35 {x:.1} {:.1})\">{}</text>\n",
            H - BOTTOM + 16.0,
            H - BOTTOM + 16.0,
            esc(label)
        ));
    }
    s
}

fn x_at(i: usize, n: usize) -> f64 {
    let plot_w = W - LEFT - RIGHT;
    LEFT + plot_w * (i as f64 + 0.5) / n as f64
}

fn y_at(v: f64, y_max: f64) -> f64 {
    let plot_h = H - TOP - BOTTOM;
    TOP + plot_h * (1.0 - if y_max > 0.0 { v / y_max } else { 0.0 })
}

/// A line chart of one series (`None`: no value that day, the line breaks).
pub fn line_chart(
    title: &str,
    points: &[(String, Option<f64>)],
    y_max: f64,
    y_fmt: &dyn Fn(f64) -> String,
) -> String {
    let labels: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
    let mut s = frame(title, &labels, y_max, y_fmt);
    let n = points.len();
    let mut segment: Vec<String> = Vec::new();
    let flush = |segment: &mut Vec<String>, s: &mut String| {
        if segment.len() > 1 {
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                COLOURS[0],
                segment.join(" ")
            ));
        }
        segment.clear();
    };
    for (i, (_, v)) in points.iter().enumerate() {
        match v {
            Some(v) => {
                let (x, y) = (x_at(i, n), y_at(*v, y_max));
                segment.push(format!("{x:.1},{y:.1}"));
                s.push_str(&format!(
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{}\"><title>{}</title></circle>\n",
                    COLOURS[0],
                    esc(&y_fmt(*v))
                ));
            }
            None => flush(&mut segment, &mut s),
        }
    }
    flush(&mut segment, &mut s);
    s.push_str("</svg>\n");
    s
}

/// A stacked bar chart: for each x label, one value per series.
pub fn bar_chart(title: &str, labels: &[String], series: &[(String, Vec<f64>)]) -> String {
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|(_, v)| v.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let y_max = totals.iter().copied().fold(0.0, f64::max).max(1.0).ceil();
    let mut s = frame(title, labels, y_max, &|v| format!("{v:.0}"));
    let n = labels.len().max(1);
    let bar_w = ((W - LEFT - RIGHT) / n as f64 * 0.7).max(1.0);
    for i in 0..labels.len() {
        let mut base = 0.0;
        for (k, (name, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let (top, bottom) = (y_at(base + v, y_max), y_at(base, y_max));
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v}</title></rect>\n",
                x_at(i, n) - bar_w / 2.0,
                bottom - top,
                COLOURS[k % COLOURS.len()],
                esc(name)
            ));
            base += v;
        }
    }
    if series.len() > 1 {
        for (k, (name, _)) in series.iter().enumerate() {
            let y = TOP + 14.0 * k as f64;
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                W - RIGHT - 150.0,
                y - 9.0,
                COLOURS[k % COLOURS.len()],
                W - RIGHT - 136.0,
                y,
                esc(name)
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The charts `--plot DIR` writes: file name and SVG text.
pub fn charts(stats: &Stats) -> Vec<(&'static str, String)> {
    let labels: Vec<String> = stats.days.iter().map(|d| d.day.clone()).collect();
    let pct = |v: f64| format!("{:.0}%", 100.0 * v);
    let first: Vec<(String, Option<f64>)> = stats
        .days
        .iter()
        .map(|d| (d.day.clone(), d.first_attempt_rate))
        .collect();
    let attempts: Vec<(String, Option<f64>)> = stats
        .days
        .iter()
        .map(|d| (d.day.clone(), d.attempts_to_green))
        .collect();
    let most = attempts
        .iter()
        .filter_map(|p| p.1)
        .fold(1.0, f64::max)
        .ceil();
    let types: Vec<(String, Vec<f64>)> = stats
        .failures_by_type
        .keys()
        .map(|kind| {
            (
                kind.clone(),
                stats
                    .days
                    .iter()
                    .map(|d| f64::from(d.failures_by_type.get(kind).copied().unwrap_or(0)))
                    .collect(),
            )
        })
        .collect();
    let recurrences = vec![(
        "recurrences".to_string(),
        stats
            .days
            .iter()
            .map(|d| f64::from(d.recurrences))
            .collect(),
    )];
    let rule_labels: Vec<String> = stats.rules.iter().map(|r| r.id.clone()).collect();
    let per_rule = vec![
        (
            "learned".to_string(),
            stats.rules.iter().map(|r| f64::from(r.learned)).collect(),
        ),
        (
            "recurred after active".to_string(),
            stats.rules.iter().map(|r| f64::from(r.recurred)).collect(),
        ),
        (
            "runs passed after it".to_string(),
            stats.rules.iter().map(|r| f64::from(r.helped)).collect(),
        ),
    ];
    vec![
        (
            "first-attempt-pass-rate.svg",
            line_chart("First-attempt pass rate per day", &first, 1.0, &pct),
        ),
        (
            "attempts-to-green.svg",
            line_chart(
                "Attempts to green per day (runs that passed)",
                &attempts,
                most,
                &|v| format!("{v:.1}"),
            ),
        ),
        (
            "failures-by-type.svg",
            bar_chart("Failures per day, by type", &labels, &types),
        ),
        (
            "recurrences.svg",
            bar_chart(
                "Recurrences of failures that already had a rule",
                &labels,
                &recurrences,
            ),
        ),
        (
            "rules.svg",
            bar_chart("Evidence per rule", &rule_labels, &per_rule),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg_with_their_data() {
        let stats = Stats {
            failures_by_type: [
                ("test_failure".to_string(), 3),
                ("planning_error".into(), 1),
            ]
            .into_iter()
            .collect(),
            days: vec![
                DayStats {
                    day: "2026-01-01".into(),
                    runs: 2,
                    first_attempt_rate: Some(0.5),
                    attempts_to_green: Some(2.0),
                    failures: 3,
                    failures_by_type: [
                        ("test_failure".to_string(), 2),
                        ("planning_error".into(), 1),
                    ]
                    .into_iter()
                    .collect(),
                    recurrences: 1,
                    ..DayStats::default()
                },
                DayStats {
                    day: "2026-01-02".into(),
                    runs: 1,
                    first_attempt_rate: Some(1.0),
                    attempts_to_green: Some(1.0),
                    failures: 1,
                    failures_by_type: [("test_failure".to_string(), 1)].into_iter().collect(),
                    ..DayStats::default()
                },
            ],
            ..Stats::default()
        };
        let charts = charts(&stats);
        assert_eq!(charts.len(), 5);
        for (name, svg) in &charts {
            assert!(
                svg.starts_with("<svg ") && svg.ends_with("</svg>\n"),
                "{name}"
            );
            assert_eq!(svg.matches("<svg").count(), 1, "{name}");
            // Every element that opens is closed or self-closing.
            let opened = svg.matches("<rect").count() + svg.matches("<circle").count();
            let closed = svg.matches("/>").count()
                + svg.matches("</rect>").count()
                + svg.matches("</circle>").count();
            assert!(closed >= opened, "{name}");
        }
        let rate = &charts[0].1;
        assert!(
            rate.contains("polyline") && rate.contains("<title>50%</title>"),
            "{rate}"
        );
        let types = &charts[2].1;
        assert!(
            types.contains("<title>planning_error: 1</title>"),
            "{types}"
        );
        assert!(types.contains("<title>test_failure: 2</title>"), "{types}");
        assert!(esc("<a&b>") == "&lt;a&amp;b&gt;");
    }
}
