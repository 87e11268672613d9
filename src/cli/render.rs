//! Two views of the same events: readable progress for people, JSON lines for scripts.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::secs;
use crate::events::{Event, Reporter, RunOutcome};
use crate::testing::TestOutcome;

/// What a command reports: the events rendered for people or, with `--json`, as JSON lines,
/// and each one logged to the log file.
pub(super) struct Output {
    human: Option<HumanRenderer>,
}

impl Output {
    /// JSON lines when `json`, else the human view.
    pub(super) fn new(json: bool) -> Self {
        Output {
            human: (!json).then(HumanRenderer::new),
        }
    }
}

impl Reporter for Output {
    fn report(&mut self, event: &Event) {
        match &mut self.human {
            Some(human) => human.report(event),
            None => JsonRenderer.report(event),
        }
        super::log::log_event(event);
    }
}

/// One JSON object per line on stdout.
pub struct JsonRenderer;

impl Reporter for JsonRenderer {
    fn report(&mut self, event: &Event) {
        let mut out = std::io::stdout().lock();
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Progress lines on stdout, a spinner with elapsed time on stderr while something runs
/// (only when stderr is a terminal), warnings on stderr.
pub struct HumanRenderer {
    spinner: Option<ProgressBar>,
}

impl HumanRenderer {
    /// A renderer with no spinner running.
    pub fn new() -> Self {
        Self { spinner: None }
    }

    fn spin(&mut self, message: String) {
        self.stop();
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        self.spinner = Some(bar);
    }

    fn stop(&mut self) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
    }

    fn line(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl Drop for HumanRenderer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Reporter for HumanRenderer {
    fn report(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                task,
                agent,
                teacher,
                rules_files,
                max_attempts,
                ..
            } => {
                self.line(&format!("promptloop run {run_id}"));
                self.line(&format!("  task:    {}", one_line(task, 100)));
                self.line(&format!(
                    "  agent:   {agent} · teacher: {teacher} · up to {max_attempts} attempt{}",
                    if *max_attempts == 1 { "" } else { "s" }
                ));
                self.line(&format!("  rules:   {}", rules_files.join(", ")));
            }
            Event::AttemptStarted {
                attempt,
                max_attempts,
            } => self.line(&format!("\nattempt {attempt}/{max_attempts}")),
            Event::AgentStarted { .. } => self.spin("agent working…".into()),
            Event::AgentFinished {
                outcome,
                changed_files,
                ..
            } => {
                self.stop();
                let mut parts = vec![format!(
                    "agent {} in {}",
                    outcome.status.describe(),
                    secs(outcome.duration)
                )];
                if let Some(turns) = outcome.turns {
                    parts.push(format!("{turns} turns"));
                }
                if let Some(cost) = outcome.cost_usd {
                    parts.push(format!("${cost:.4}"));
                }
                parts.push(match changed_files.len() {
                    0 => "no files changed".into(),
                    1 => "1 file changed".into(),
                    n => format!("{n} files changed"),
                });
                let mark = if outcome.status.worked_on_task() {
                    "•"
                } else {
                    "✗"
                };
                self.line(&format!("  {mark} {}", parts.join(" · ")));
                if !outcome.actions.is_empty() {
                    let shown: Vec<String> = outcome
                        .actions
                        .iter()
                        .take(5)
                        .map(|a| one_line(a, 80))
                        .collect();
                    let more = outcome.actions.len().saturating_sub(shown.len());
                    self.line(&format!(
                        "    did: {}{}",
                        shown.join(" · "),
                        if more > 0 {
                            format!(" · {more} more")
                        } else {
                            String::new()
                        }
                    ));
                }
                if !outcome.permission_denials.is_empty() {
                    self.line(&format!(
                        "    {} tool use(s) denied by the permission settings (claude.permission_mode / claude.allowed_tools)",
                        outcome.permission_denials.len()
                    ));
                }
            }
            Event::TestsStarted { command, .. } => {
                self.spin(format!("running tests: {}", one_line(command, 60)))
            }
            Event::TestsFinished { tests, failing, .. } => {
                self.stop();
                let counts = tests
                    .report
                    .as_ref()
                    .map(|r| {
                        let mut c = vec![format!("{} passed", r.passed)];
                        if r.failed > 0 {
                            c.push(format!("{} failed", r.failed));
                        }
                        if r.errors > 0 {
                            c.push(format!("{} errors", r.errors));
                        }
                        format!(" ({})", c.join(", "))
                    })
                    .unwrap_or_default();
                let (mark, what) = match tests.outcome {
                    TestOutcome::Passed => ("✓", "tests passed".to_string()),
                    TestOutcome::Failed => ("✗", "tests failed".to_string()),
                    TestOutcome::NoTests => ("✗", "no tests collected".to_string()),
                    TestOutcome::TimedOut => ("✗", "tests timed out".to_string()),
                    TestOutcome::Interrupted => ("✗", "tests interrupted".to_string()),
                };
                self.line(&format!(
                    "  {mark} {what} in {}{counts}",
                    secs(tests.duration)
                ));
                for id in failing.iter().take(5) {
                    self.line(&format!("      {id}"));
                }
                if failing.len() > 5 {
                    self.line(&format!("      … and {} more", failing.len() - 5));
                }
            }
            Event::FailureCaptured {
                failure_id,
                payload_chars,
                redactions,
                ..
            } => {
                let redacted = match redactions {
                    0 => String::new(),
                    n => format!(", {n} secret(s) redacted"),
                };
                self.line(&format!(
                    "  • failure {failure_id} captured ({payload_chars} characters for the teacher{redacted})"
                ));
            }
            Event::TeacherStarted { teacher, .. } => {
                self.spin(format!("asking the teacher ({teacher})…"))
            }
            Event::RuleLearned {
                rule,
                files,
                added,
                rule_id,
                note,
                ..
            } => {
                self.stop();
                let file = files.join(", ");
                if *added {
                    self.line(&format!("  ✓ rule {rule_id} learned → {file}"));
                } else {
                    self.line(&format!(
                        "  • rule {rule_id} learned, not newly written to {file}"
                    ));
                }
                if let Some(note) = note {
                    self.line(&format!("      {note}"));
                }
                self.line(&format!("      Rule: {}", rule.rule));
                self.line(&format!("      When: {}", rule.when));
                self.line(&format!("      Why:  {}", rule.why));
            }
            Event::FailureRecurred {
                original_failure_id,
                count,
                rule,
                ..
            } => {
                self.stop();
                let times = if *count == 1 {
                    "once".to_string()
                } else {
                    format!("{count} times")
                };
                self.line(&format!(
                    "  ↻ the same failure as {original_failure_id} came back ({times} since its rule was learned)"
                ));
                if let Some(rule) = rule {
                    self.line(&format!("      its rule: {}", rule.rule));
                }
            }
            Event::ReviewFinished {
                findings,
                accepted,
                input_tokens,
                output_tokens,
                cost_usd,
                ..
            } => {
                self.stop();
                let mut usage = Vec::new();
                if let (Some(i), Some(o)) = (input_tokens, output_tokens) {
                    usage.push(format!("{i}+{o} tokens"));
                }
                if let Some(c) = cost_usd {
                    usage.push(format!("~${c:.4}"));
                }
                let usage = if usage.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", usage.join(", "))
                };
                if findings.is_empty() {
                    self.line(&format!("  ✓ review: no problems found{usage}"));
                } else {
                    self.line(&format!(
                        "  • review: {} finding(s), {accepted} confident enough to learn from{usage}",
                        findings.len()
                    ));
                    for f in findings {
                        self.line(&format!(
                            "      [{} {:.2}] {}",
                            f.kind, f.confidence, f.summary
                        ));
                    }
                }
            }
            Event::ReviewFailed { reason, .. } => {
                self.stop();
                eprintln!("warning: the semantic review was skipped: {reason}");
            }
            Event::FailurePending { reason, .. } => {
                self.stop();
                self.line(&format!("  ✗ no rule: {reason}"));
                self.line("      the failure is kept; `promptloop learn` analyses it again later");
            }
            Event::AttemptReverted { inspect, .. } => {
                self.line(&format!(
                    "  ↺ attempt undone; see what it changed: {inspect}"
                ));
            }
            Event::Warning { message } => {
                self.stop();
                eprintln!("warning: {message}");
            }
            Event::RunFinished {
                outcome,
                attempts,
                rules_learned,
                pending,
                cost_usd,
                duration,
                record,
                message,
            } => {
                self.stop();
                let mark = match outcome {
                    RunOutcome::Passed => "✓",
                    _ => "✗",
                };
                self.line(&format!("\n{mark} {message}"));
                let mut parts = vec![
                    format!(
                        "{attempts} attempt{}",
                        if *attempts == 1 { "" } else { "s" }
                    ),
                    format!(
                        "{rules_learned} rule{} learned",
                        if *rules_learned == 1 { "" } else { "s" }
                    ),
                ];
                if *pending > 0 {
                    parts.push(format!("{pending} pending"));
                }
                parts.push(secs(*duration));
                if *cost_usd > 0.0 {
                    parts.push(format!("${cost_usd:.4} agent cost"));
                }
                self.line(&format!("  {}", parts.join(" · ")));
                self.line(&format!("  record: {record}"));
            }
        }
    }
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    } else if text.lines().count() > 1 {
        format!("{line} …")
    } else {
        line.to_string()
    }
}
