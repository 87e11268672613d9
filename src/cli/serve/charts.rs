//! Charts drawn on the server as SVG (readable without JavaScript), each with its figures
//! as a table too: rules learned over time, first-attempt pass rate and attempts to green
//! per week, failures by type, recurrences of failures that have a rule, and bench arms
//! when the store has bench results.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::App;
use super::view::{PageError, escape, short};
use crate::store::{
    AttemptRow, FailureStatus, RuleFilter, RuleStore, RunRow, SqliteStore, StoredFailure,
    StoredRule,
};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 44.0;

const BLUE: &str = "#3b5bdb";
const GREEN: &str = "#2f855a";
const RED: &str = "#c53030";
const ORANGE: &str = "#dd6b20";
const GREY: &str = "#a0aec0";
const INK: &str = "#2d3748";

/// The axis of a share.
const PERCENT: Axis<'static> = Axis {
    max: 100.0,
    whole: false,
    unit: "%",
};
const RULE: &str = "#e2e8f0";

/// One chart for the page.
#[derive(Debug, Serialize)]
pub(super) struct Chart {
    /// Anchor on the page.
    id: &'static str,
    /// Heading.
    title: String,
    /// What it shows and how it is counted.
    about: String,
    /// The drawing; `None` without data.
    svg: Option<String>,
    /// What is said instead of an empty drawing.
    empty: String,
    /// The same figures as text.
    table: Vec<[String; 2]>,
}

/// One arm of a benchmark: the same tasks run one way (with rules, without, another agent).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(super) struct BenchArm {
    /// The arm's name.
    pub(super) name: String,
    /// Tasks run.
    pub(super) tasks: u32,
    /// Tasks whose tests passed.
    pub(super) passed: u32,
    /// Mean attempts to green, where known.
    pub(super) mean_attempts: Option<f64>,
}

/// The arms of the latest bench run in the store (`promptloop bench`), from its
/// finished evaluation trials (the `--learn` pass's training trials are left out), in the
/// order the arms first finished a trial. Bench runs are kept in the project's SQLite file
/// (also when rules are in a team store).
pub(super) fn bench_arms(store: &SqliteStore) -> Result<Vec<BenchArm>, PageError> {
    let Some(run) = store.latest_bench_run()? else {
        return Ok(Vec::new());
    };
    let mut arms: Vec<(BenchArm, u32, u32)> = Vec::new();
    for trial in store.bench_trials(&run.id)? {
        if trial.phase != crate::bench::Split::Test.as_str() {
            continue;
        }
        let index = match arms.iter().position(|(a, _, _)| a.name == trial.arm) {
            Some(i) => i,
            None => {
                arms.push((
                    BenchArm {
                        name: trial.arm.clone(),
                        tasks: 0,
                        passed: 0,
                        mean_attempts: None,
                    },
                    0,
                    0,
                ));
                arms.len() - 1
            }
        };
        let (arm, green, attempts) = &mut arms[index];
        arm.tasks += 1;
        if trial.passed {
            arm.passed += 1;
            if let Some(n) = trial.data.get("attempts").and_then(|v| v.as_u64()) {
                *green += 1;
                *attempts += n as u32;
            }
        }
    }
    Ok(arms
        .into_iter()
        .map(|(mut arm, green, attempts)| {
            arm.mean_attempts = (green > 0).then(|| f64::from(attempts) / f64::from(green));
            arm
        })
        .collect())
}

/// [`bench_arms`] from the project's SQLite file, when there is one.
fn local_bench_arms(project_dir: &std::path::Path) -> Result<Vec<BenchArm>, PageError> {
    if !crate::store::project_db_path(project_dir).exists() {
        return Ok(Vec::new());
    }
    bench_arms(&crate::store::open_project(project_dir)?)
}

/// Every chart, from what the store holds.
pub(super) fn all(app: &App, store: &dyn RuleStore) -> Result<Vec<Chart>, PageError> {
    let rules = store.list(&RuleFilter::default())?;
    let failures = store.failures()?;
    let mut history = Vec::new();
    for run in store.runs(usize::MAX >> 1)? {
        let attempts = store.attempts(&run.id)?;
        history.push((run, attempts));
    }
    history.reverse();
    let weeks = weekly(&history);
    Ok(vec![
        rules_chart(&rules),
        first_pass_chart(&weeks),
        attempts_chart(&weeks),
        failures_chart(&failures),
        recurrence_chart(app, &failures),
        bench_chart(&local_bench_arms(&app.project_dir)?),
    ])
}

/// The day of an RFC 3339 stamp (`2026-11-24`), if it has one.
fn day(stamp: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(stamp.get(..10)?, "%Y-%m-%d").ok()
}

/// `2026-W47` for a day.
fn week_of(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let w = d.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// Rules by the day they were first learned, counted up.
fn rules_over_time(rules: &[StoredRule]) -> Vec<(String, u32)> {
    let mut per_day: BTreeMap<chrono::NaiveDate, u32> = BTreeMap::new();
    for r in rules {
        if let Some(d) = day(&r.created_at) {
            *per_day.entry(d).or_default() += 1;
        }
    }
    let mut total = 0;
    per_day
        .into_iter()
        .map(|(d, n)| {
            total += n;
            (d.format("%Y-%m-%d").to_string(), total)
        })
        .collect()
}

/// One week of runs.
#[derive(Debug, Default, PartialEq)]
struct Week {
    label: String,
    /// Runs whose first attempt ran the tests.
    runs: u32,
    /// … of which the first attempt passed.
    first_pass: u32,
    /// Runs that passed.
    passed: u32,
    /// Sum over passed runs of the attempt that passed.
    attempts_to_green: u32,
}

/// Runs grouped by the ISO week they started in, oldest first.
fn weekly(history: &[(RunRow, Vec<AttemptRow>)]) -> Vec<Week> {
    let mut weeks: BTreeMap<String, Week> = BTreeMap::new();
    for (run, attempts) in history {
        let Some(d) = run.started_at.as_deref().and_then(day) else {
            continue;
        };
        let label = week_of(d);
        let week = weeks.entry(label.clone()).or_insert_with(|| Week {
            label,
            ..Week::default()
        });
        if let Some(first) = attempts.iter().find(|a| a.attempt == 1)
            && first.tests_outcome.is_some()
        {
            week.runs += 1;
            if first.tests_outcome.as_deref() == Some("passed") {
                week.first_pass += 1;
            }
        }
        if run.outcome.as_deref() == Some("passed") {
            let green = attempts
                .iter()
                .find(|a| a.tests_outcome.as_deref() == Some("passed"))
                .map_or(run.attempts.max(1), |a| a.attempt);
            week.passed += 1;
            week.attempts_to_green += green;
        }
    }
    weeks.into_values().collect()
}

/// Failures by type: (type, pending, learned), most first.
fn by_type(failures: &[StoredFailure]) -> Vec<(String, u32, u32)> {
    let mut counts: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for f in failures {
        let entry = counts.entry(f.context.failure_type.clone()).or_default();
        match f.status {
            FailureStatus::Pending => entry.0 += 1,
            FailureStatus::Learned => entry.1 += 1,
        }
    }
    let mut rows: Vec<(String, u32, u32)> =
        counts.into_iter().map(|(t, (p, l))| (t, p, l)).collect();
    rows.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// Learned failures that came back after their rule: (failure id, rule text, times), most
/// first, at most 12.
fn recurring(failures: &[StoredFailure]) -> Vec<(String, String, u32)> {
    let mut rows: Vec<(String, String, u32)> = failures
        .iter()
        .filter(|f| f.status == FailureStatus::Learned && f.recurrences > 0)
        .filter_map(|f| {
            let rule = f.rule.as_ref()?;
            Some((f.context.id.clone(), rule.rule.clone(), f.recurrences))
        })
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(12);
    rows
}

fn rules_chart(rules: &[StoredRule]) -> Chart {
    let points = rules_over_time(rules);
    let labels: Vec<String> = points.iter().map(|(d, _)| d.clone()).collect();
    let values: Vec<f64> = points.iter().map(|(_, n)| f64::from(*n)).collect();
    Chart {
        id: "rules",
        title: "Rules learned over time".into(),
        about: "Every rule in the store by the day it was first learned, counted up (merged \
                repeats do not add a rule; retired rules still count)."
            .into(),
        svg: (!points.is_empty()).then(|| {
            let axis = Axis {
                max: nice_max(values.iter().copied().fold(0.0, f64::max)),
                whole: true,
                unit: "",
            };
            let title = "Rules learned over time";
            // A line needs a few days to say anything; before that, a column per day.
            if points.len() < 3 {
                column_chart(title, &labels, &values, axis, BLUE, |v| format!("{v:.0}"))
            } else {
                line_chart(title, &labels, &values, axis, |v| format!("{v:.0}"))
            }
        }),
        empty: "No rule learned yet.".into(),
        table: points
            .iter()
            .map(|(d, n)| [d.clone(), n.to_string()])
            .collect(),
    }
}

fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * f64::from(part) / f64::from(whole)
    }
}

fn first_pass_chart(weeks: &[Week]) -> Chart {
    let with_runs: Vec<&Week> = weeks.iter().filter(|w| w.runs > 0).collect();
    let labels: Vec<String> = with_runs.iter().map(|w| w.label.clone()).collect();
    let values: Vec<f64> = with_runs
        .iter()
        .map(|w| percent(w.first_pass, w.runs))
        .collect();
    Chart {
        id: "first-pass",
        title: "First-attempt pass rate per week".into(),
        about: "Of the runs started that week whose first attempt ran the tests, the share \
                whose first attempt passed: the agent got it right before learning anything \
                in the run."
            .into(),
        svg: (!with_runs.is_empty()).then(|| {
            column_chart(
                "First-attempt pass rate per week",
                &labels,
                &values,
                PERCENT,
                GREEN,
                |v| format!("{v:.0}%"),
            )
        }),
        empty: "No run recorded yet.".into(),
        table: with_runs
            .iter()
            .map(|w| {
                [
                    w.label.clone(),
                    format!(
                        "{:.0}% ({} of {} runs)",
                        percent(w.first_pass, w.runs),
                        w.first_pass,
                        w.runs
                    ),
                ]
            })
            .collect(),
    }
}

fn attempts_chart(weeks: &[Week]) -> Chart {
    let with_green: Vec<&Week> = weeks.iter().filter(|w| w.passed > 0).collect();
    let labels: Vec<String> = with_green.iter().map(|w| w.label.clone()).collect();
    let values: Vec<f64> = with_green
        .iter()
        .map(|w| f64::from(w.attempts_to_green) / f64::from(w.passed))
        .collect();
    Chart {
        id: "attempts",
        title: "Attempts to green per week".into(),
        about: "Of the runs started that week that ended with passing tests, the mean number \
                of the attempt that passed (1 = the first)."
            .into(),
        svg: (!with_green.is_empty()).then(|| {
            column_chart(
                "Attempts to green per week",
                &labels,
                &values,
                Axis {
                    max: nice_max(values.iter().copied().fold(2.0, f64::max)),
                    whole: false,
                    unit: "",
                },
                BLUE,
                |v| format!("{v:.1}"),
            )
        }),
        empty: "No run has passed yet.".into(),
        table: with_green
            .iter()
            .zip(&values)
            .map(|(w, v)| {
                [
                    w.label.clone(),
                    format!("{v:.2} ({} passed runs)", w.passed),
                ]
            })
            .collect(),
    }
}

fn failures_chart(failures: &[StoredFailure]) -> Chart {
    let rows = by_type(failures);
    let bars: Vec<(String, Vec<(f64, &str)>)> = rows
        .iter()
        .map(|(t, p, l)| {
            (
                t.clone(),
                vec![(f64::from(*l), GREEN), (f64::from(*p), ORANGE)],
            )
        })
        .collect();
    let max = rows.iter().map(|(_, p, l)| p + l).max().unwrap_or(0);
    Chart {
        id: "failures",
        title: "Failures by type".into(),
        about: "Every failure in the store by its type: learned (a rule came from it) and \
                pending (waiting for a teacher)."
            .into(),
        svg: (!rows.is_empty()).then(|| {
            bar_rows(
                "Failures by type",
                &bars,
                nice_max(f64::from(max)),
                &[("learned", GREEN), ("pending", ORANGE)],
            )
        }),
        empty: "No failure recorded yet.".into(),
        table: rows
            .iter()
            .map(|(t, p, l)| [t.clone(), format!("{l} learned, {p} pending")])
            .collect(),
    }
}

fn recurrence_chart(app: &App, failures: &[StoredFailure]) -> Chart {
    let rows = recurring(failures);
    let bars: Vec<(String, Vec<(f64, &str)>)> = rows
        .iter()
        .map(|(_, rule, n)| (short(&app.clean(rule), 38), vec![(f64::from(*n), RED)]))
        .collect();
    let max = rows.iter().map(|(_, _, n)| *n).max().unwrap_or(0);
    Chart {
        id: "recurrences",
        title: "Recurrences of failures that have a rule".into(),
        about: "Learned failures that came back (same fingerprint) after their rule was \
                written, by the rule learned from them: a rule that keeps recurring is not \
                working."
            .into(),
        svg: (!rows.is_empty()).then(|| {
            bar_rows(
                "Recurrences of failures that have a rule",
                &bars,
                nice_max(f64::from(max)),
                &[("recurrences", RED)],
            )
        }),
        empty: "No learned failure has come back.".into(),
        table: rows
            .iter()
            .map(|(id, rule, n)| {
                [
                    format!("{id}: {}", short(&app.clean(rule), 80)),
                    n.to_string(),
                ]
            })
            .collect(),
    }
}

fn bench_chart(arms: &[BenchArm]) -> Chart {
    let labels: Vec<String> = arms.iter().map(|a| a.name.clone()).collect();
    let values: Vec<f64> = arms.iter().map(|a| percent(a.passed, a.tasks)).collect();
    Chart {
        id: "bench",
        title: "Bench arms".into(),
        about: "Benchmark results per arm: the share of its tasks whose tests passed.".into(),
        svg: (!arms.is_empty()).then(|| {
            column_chart("Bench arms", &labels, &values, PERCENT, BLUE, |v| {
                format!("{v:.0}%")
            })
        }),
        empty: "No bench results in the store.".into(),
        table: arms
            .iter()
            .map(|a| {
                let attempts = a
                    .mean_attempts
                    .map(|m| format!(", {m:.1} attempts to green"))
                    .unwrap_or_default();
                [
                    a.name.clone(),
                    format!("{} of {} passed{attempts}", a.passed, a.tasks),
                ]
            })
            .collect(),
    }
}

/// A round upper bound for an axis: 1, 2, 5, 10, 20, 50, …
fn nice_max(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= max {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

fn open_svg(out: &mut String, title: &str, height: f64) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {WIDTH} \
         {height}\" role=\"img\" font-family=\"system-ui, sans-serif\" font-size=\"11\">\
         <title>{}</title>",
        escape(title)
    );
}

/// The axis' step: a round number that cuts `max` (itself round, see [`nice_max`]) into at
/// most five parts; whole numbers for counts.
fn axis_step(max: f64, whole: bool) -> f64 {
    let magnitude = 10f64.powf(max.log10().floor());
    let leading = (max / magnitude).round();
    let step = if leading <= 1.0 {
        magnitude / 5.0
    } else if leading <= 2.0 {
        magnitude / 2.0
    } else {
        magnitude
    };
    if whole { step.max(1.0) } else { step }
}

/// A tick's label: as many decimals as the step needs, and the unit.
fn tick_label(v: f64, step: f64, unit: &str) -> String {
    let decimals = if step >= 1.0 {
        0
    } else if step >= 0.1 {
        1
    } else {
        2
    };
    format!("{v:.decimals$}{unit}")
}

/// The y axis of a chart: what its ticks count.
#[derive(Clone, Copy)]
struct Axis<'a> {
    /// Its top (a round number).
    max: f64,
    /// Counts: whole-number ticks.
    whole: bool,
    /// After each tick's number (`%`).
    unit: &'a str,
}

/// Horizontal grid lines and their values on the left, for the plot from `TOP`.
fn grid(out: &mut String, axis: Axis<'_>) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let step = axis_step(axis.max, axis.whole);
    let mut k = 0.0;
    while k * step <= axis.max * (1.0 + 1e-9) {
        let v = k * step;
        let y = TOP + plot_h - plot_h * v / axis.max;
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{RULE}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(&tick_label(v, step, axis.unit))
        );
        k += 1.0;
    }
}

/// Labels under the x axis, thinned so they do not overlap.
fn x_labels(out: &mut String, labels: &[String], x_of: &dyn Fn(usize) -> f64) {
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % every != 0 && i + 1 != labels.len() {
            continue;
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>",
            x_of(i),
            HEIGHT - BOTTOM + 16.0,
            escape(label)
        );
    }
}

/// Vertical bars, one per label, with their values on top.
fn column_chart(
    title: &str,
    labels: &[String],
    values: &[f64],
    axis: Axis<'_>,
    color: &str,
    fmt: impl Fn(f64) -> String,
) -> String {
    let max = axis.max;
    let mut out = String::new();
    open_svg(&mut out, title, HEIGHT);
    grid(&mut out, axis);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / values.len().max(1) as f64;
    let bar_w = (slot * 0.7).min(64.0);
    for (i, v) in values.iter().enumerate() {
        let h = if max > 0.0 { plot_h * v / max } else { 0.0 };
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let y = TOP + plot_h - h;
        let _ = write!(
            out,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" \
             fill=\"{color}\"><title>{}: {}</title></rect>",
            escape(&labels[i]),
            escape(&fmt(*v))
        );
        if values.len() <= 16 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>",
                x + bar_w / 2.0,
                y - 4.0,
                escape(&fmt(*v))
            );
        }
    }
    x_labels(&mut out, labels, &|i| LEFT + slot * (i as f64 + 0.5));
    out.push_str("</svg>");
    out
}

/// A line through the points, in order, with a dot at each.
fn line_chart(
    title: &str,
    labels: &[String],
    values: &[f64],
    axis: Axis<'_>,
    fmt: impl Fn(f64) -> String,
) -> String {
    let max = axis.max;
    let mut out = String::new();
    open_svg(&mut out, title, HEIGHT);
    grid(&mut out, axis);
    let plot_w = WIDTH - LEFT - RIGHT - 16.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |i: usize| {
        if values.len() <= 1 {
            LEFT + 8.0 + plot_w / 2.0
        } else {
            LEFT + 8.0 + plot_w * i as f64 / (values.len() - 1) as f64
        }
    };
    let y_of = |v: f64| TOP + plot_h - if max > 0.0 { plot_h * v / max } else { 0.0 };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x_of(i), y_of(*v)))
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"line\" fill=\"none\" stroke=\"{BLUE}\" stroke-width=\"2.5\" \
         points=\"{}\"/>",
        points.join(" ")
    );
    for (i, v) in values.iter().enumerate() {
        let _ = write!(
            out,
            "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{BLUE}\">\
             <title>{}: {}</title></circle>",
            x_of(i),
            y_of(*v),
            escape(&labels[i]),
            escape(&fmt(*v))
        );
    }
    if let Some(last) = values.last() {
        let i = values.len() - 1;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>",
            x_of(i),
            y_of(*last) - 8.0,
            escape(&fmt(*last))
        );
    }
    x_labels(&mut out, labels, &x_of);
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one row per label, each split into coloured parts, with a legend.
fn bar_rows(
    title: &str,
    rows: &[(String, Vec<(f64, &str)>)],
    max: f64,
    legend: &[(&str, &str)],
) -> String {
    const ROW: f64 = 24.0;
    const LABEL_W: f64 = 230.0;
    let height = TOP + ROW * rows.len() as f64 + 36.0;
    let mut out = String::new();
    open_svg(&mut out, title, height);
    let plot_w = WIDTH - LABEL_W - RIGHT - 40.0;
    for (r, (label, parts)) in rows.iter().enumerate() {
        let y = TOP + ROW * r as f64;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
            LABEL_W - 8.0,
            y + 15.0,
            escape(&short(label, 40))
        );
        let mut x = LABEL_W;
        let mut total = 0.0;
        for (value, color) in parts {
            let w = if max > 0.0 { plot_w * value / max } else { 0.0 };
            if w > 0.0 {
                let _ = write!(
                    out,
                    "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
                     height=\"{:.1}\" fill=\"{color}\"><title>{}: {value}</title></rect>",
                    y + 3.0,
                    ROW - 6.0,
                    escape(label)
                );
            }
            x += w;
            total += value;
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\">{total}</text>",
            x + 6.0,
            y + 15.0
        );
    }
    let mut x = LABEL_W;
    let y = TOP + ROW * rows.len() as f64 + 14.0;
    for (name, color) in legend {
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\">{}</text>",
            y - 9.0,
            x + 14.0,
            y,
            escape(name)
        );
        x += 24.0 + 7.0 * name.len() as f64;
    }
    out.push_str("</svg>");
    out
}

/// The Runs view's strip: one column per run (oldest on the left), one square per attempt
/// from the bottom, green where the tests passed, red where they failed.
pub(super) fn attempt_strip(history: &[(RunRow, Vec<AttemptRow>)]) -> Option<String> {
    const CELL: f64 = 12.0;
    const GAP: f64 = 3.0;
    let shown = &history[history.len().saturating_sub(40)..];
    let tallest = shown.iter().map(|(_, a)| a.len()).max().unwrap_or(0);
    if shown.is_empty() || tallest == 0 {
        return None;
    }
    let height = 8.0 + (CELL + GAP) * tallest as f64 + 20.0;
    let step = CELL + 4.0;
    // As wide as its runs (at least room for its two labels), drawn at its own size.
    let width = (20.0 + step * shown.len() as f64).max(120.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"strip\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\">\
         <title>Attempts of the last {} runs, oldest on the left</title>",
        shown.len()
    );
    for (i, (run, attempts)) in shown.iter().enumerate() {
        let x = 10.0 + step * i as f64;
        for (k, a) in attempts.iter().enumerate() {
            let y = 8.0 + (CELL + GAP) * (tallest - 1 - k) as f64;
            let color = match a.tests_outcome.as_deref() {
                Some("passed") => GREEN,
                Some("failed") => RED,
                _ => GREY,
            };
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{CELL}\" height=\"{CELL}\" rx=\"2\" \
                 fill=\"{color}\"><title>{} attempt {}: tests {}</title></rect>",
                escape(&run.id),
                a.attempt,
                escape(a.tests_outcome.as_deref().unwrap_or("not run"))
            );
        }
    }
    let _ = write!(
        out,
        "<text x=\"10\" y=\"{:.1}\" fill=\"{INK}\">oldest</text><text x=\"{:.1}\" y=\"{:.1}\" \
         text-anchor=\"end\" fill=\"{INK}\">newest</text></svg>",
        height - 4.0,
        width - 10.0,
        height - 4.0
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, started: &str, outcome: &str, attempts: &[&str]) -> (RunRow, Vec<AttemptRow>) {
        (
            RunRow {
                id: id.into(),
                started_at: Some(started.into()),
                outcome: Some(outcome.into()),
                attempts: attempts.len() as u32,
                ..RunRow::default()
            },
            attempts
                .iter()
                .enumerate()
                .map(|(i, t)| AttemptRow {
                    run_id: id.into(),
                    attempt: i as u32 + 1,
                    tests_outcome: Some(t.to_string()),
                    ..AttemptRow::default()
                })
                .collect(),
        )
    }

    #[test]
    fn weeks_count_first_attempt_passes_and_attempts_to_green() {
        let history = vec![
            run("a", "2026-11-23T10:00:00+01:00", "passed", &["passed"]),
            run(
                "b",
                "2026-11-24T10:00:00+01:00",
                "passed",
                &["failed", "failed", "passed"],
            ),
            run("c", "2026-11-25T10:00:00", "failed", &["failed", "failed"]),
            run(
                "d",
                "2026-12-01T09:00:00+01:00",
                "passed",
                &["failed", "passed"],
            ),
        ];
        let weeks = weekly(&history);
        assert_eq!(
            weeks,
            vec![
                Week {
                    label: "2026-W48".into(),
                    runs: 3,
                    first_pass: 1,
                    passed: 2,
                    attempts_to_green: 4,
                },
                Week {
                    label: "2026-W49".into(),
                    runs: 1,
                    first_pass: 0,
                    passed: 1,
                    attempts_to_green: 2,
                },
            ]
        );
        let chart = first_pass_chart(&weeks);
        assert_eq!(chart.table[0][1], "33% (1 of 3 runs)");
        let svg = chart.svg.unwrap();
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2, "{svg}");
        assert_eq!(attempts_chart(&weeks).table[0][1], "2.00 (2 passed runs)");
    }

    #[test]
    fn no_data_draws_no_chart_and_says_so() {
        let chart = bench_chart(&[]);
        assert!(chart.svg.is_none());
        assert_eq!(chart.empty, "No bench results in the store.");
        assert!(first_pass_chart(&[]).svg.is_none());
        assert!(attempt_strip(&[]).is_none());
    }

    #[test]
    fn bench_arms_are_drawn_when_there_are_some() {
        let arms = vec![
            BenchArm {
                name: "with rules".into(),
                tasks: 10,
                passed: 8,
                mean_attempts: Some(1.5),
            },
            BenchArm {
                name: "without".into(),
                tasks: 10,
                passed: 5,
                mean_attempts: None,
            },
        ];
        let chart = bench_chart(&arms);
        let svg = chart.svg.unwrap();
        assert!(svg.contains(">80%<") && svg.contains(">50%<"), "{svg}");
        assert_eq!(chart.table[0][1], "8 of 10 passed, 1.5 attempts to green");
    }

    #[test]
    fn bench_arms_come_from_the_latest_bench_runs_evaluation_trials() {
        use crate::store::evidence::{BenchRunRow, BenchTrialRow};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        assert!(bench_arms(&store).unwrap().is_empty());
        let trial = |phase: &str, task: &str, arm: &str, n: u32, passed: bool, attempts: u64| {
            BenchTrialRow {
                phase: phase.into(),
                task: task.into(),
                arm: arm.into(),
                trial: n,
                passed,
                outcome: if passed { "passed" } else { "failed" }.into(),
                data: serde_json::json!({ "attempts": attempts }),
            }
        };
        for (id, started) in [
            ("b-old", "2026-11-01T10:00:00Z"),
            ("b-new", "2026-11-02T10:00:00Z"),
        ] {
            store
                .start_bench(&BenchRunRow {
                    id: id.into(),
                    suite: "suite.yaml".into(),
                    suite_hash: "h".into(),
                    started_at: started.into(),
                    finished_at: None,
                    options: serde_json::json!({}),
                })
                .unwrap();
        }
        store
            .record_bench_trial("b-old", &trial("test", "a", "old", 0, true, 1))
            .unwrap();
        for t in [
            trial("train", "a", "rules", 0, false, 4),
            trial("test", "a", "rules", 0, true, 1),
            trial("test", "a", "rules", 1, true, 2),
            trial("test", "b", "rules", 0, false, 4),
            trial("test", "a", "none", 0, false, 4),
            trial("test", "b", "none", 0, true, 3),
        ] {
            store.record_bench_trial("b-new", &t).unwrap();
        }
        let arms = bench_arms(&store).unwrap();
        assert_eq!(
            arms,
            vec![
                BenchArm {
                    name: "rules".into(),
                    tasks: 3,
                    passed: 2,
                    mean_attempts: Some(1.5),
                },
                BenchArm {
                    name: "none".into(),
                    tasks: 2,
                    passed: 1,
                    mean_attempts: Some(3.0),
                },
            ]
        );
    }

    #[test]
    fn labels_are_escaped_inside_the_svg() {
        let svg = column_chart("t", &["<script>".to_string()], &[1.0], PERCENT, BLUE, |v| {
            v.to_string()
        });
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn ticks_are_round_and_counts_are_whole() {
        assert_eq!(axis_step(1.0, true), 1.0);
        assert_eq!(axis_step(5.0, true), 1.0);
        assert_eq!(axis_step(20.0, true), 5.0);
        assert_eq!(axis_step(100.0, false), 20.0);
        assert_eq!(axis_step(2.0, false), 0.5);
        assert_eq!(tick_label(0.5, 0.5, ""), "0.5");
        assert_eq!(tick_label(40.0, 20.0, "%"), "40%");
        let mut out = String::new();
        grid(
            &mut out,
            Axis {
                max: 5.0,
                whole: true,
                unit: "",
            },
        );
        let ticks: Vec<&str> = out
            .split("text-anchor=\"end\" fill=\"#2d3748\">")
            .skip(1)
            .map(|t| t.split('<').next().unwrap())
            .collect();
        assert_eq!(ticks, ["0", "1", "2", "3", "4", "5"]);
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(11.0), 20.0);
        assert_eq!(nice_max(180.0), 200.0);
    }

    #[test]
    fn the_strip_has_a_square_per_attempt() {
        let history = vec![
            run("a", "2026-11-23T10:00:00", "passed", &["passed"]),
            run("b", "2026-11-24T10:00:00", "passed", &["failed", "passed"]),
        ];
        let svg = attempt_strip(&history).unwrap();
        assert_eq!(svg.matches("rx=\"2\"").count(), 3);
        assert!(svg.contains(RED) && svg.contains(GREEN));
    }
}
