//! A failure, captured with its evidence, and its compact rendering for a teacher.
//!
//! The prototype sent the first 8–10k characters of the diff and 4–5k of the test log, which
//! drops pytest's summary at the end. Here every part has a priority and a share of the
//! budget: every failing test id, the assertion lines, the summary and the task always go;
//! the diff is trimmed last, fairly across files.

use serde::{Deserialize, Serialize};

use crate::pattern::matches_any;
use crate::testing::TestFailure;

/// Files whose content is never sent, even as diff (matched on the file name; a glob with
/// a `/` on the whole path). `id_*` alone would hide source files like `id_utils.py`, so the
/// SSH key names are listed one by one.
pub const DEFAULT_PRIVATE_FILES: &[&str] = &[
    ".env*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "id_dsa*",
    "*.p12",
    "*.pfx",
    ".netrc",
    ".pgpass",
    "credentials",
    "credentials.json",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".dockercfg",
    ".docker/config.json",
    "*.keystore",
    "*.jks",
    "*.kdbx",
    "*.tfvars",
    "*.tfstate",
    "*.tfstate.backup",
    "secrets.y*ml",
    "*.secret",
    "*.secrets",
];

/// Files whose diff is noise for a teacher (matched on the file name).
const NOISE_FILES: &[&str] = &[
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "Cargo.lock",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "go.sum",
    "composer.lock",
    "Gemfile.lock",
    "*.min.js",
    "*.map",
];

/// Everything known about one failure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailureContext {
    /// Stable id (also the file name under `.promptloop/failures/`).
    pub id: String,
    /// `test_failure`, `planning_error`, …
    pub failure_type: String,
    /// Where it came from: `pytest`, `tests`, `manual`.
    pub source: String,
    /// The task the agent was given.
    pub task: String,
    /// The project directory.
    pub project_dir: String,
    /// The run and attempt, for failures from `promptloop run`.
    pub run_id: Option<String>,
    /// 1-based attempt.
    pub attempt: Option<u32>,
    /// When it was captured (RFC 3339).
    pub captured_at: String,
    /// The test command.
    pub test_command: Option<String>,
    /// Every failing test with its evidence.
    pub tests: Vec<TestFailure>,
    /// Failing ids when the runner wrote no report (from its summary lines).
    pub failing_ids: Vec<String>,
    /// The closing part of the test output (pytest's short summary).
    pub test_summary: String,
    /// The attempt's change against the snapshot taken before it.
    pub diff: String,
    /// How the agent's run ended, in words.
    pub agent_status: Option<String>,
    /// The agent's final message.
    pub agent_message: Option<String>,
    /// A person's description (manual reports).
    pub description: Option<String>,
    /// A person's context (manual reports).
    pub context: Option<String>,
}

impl FailureContext {
    /// A failure reported by hand (`report-failure`, the MCP tool): its type, what went
    /// wrong and what should have happened, with the task it belonged to.
    pub fn manual(
        id: String,
        failure_type: &str,
        task: String,
        project_dir: &std::path::Path,
        description: String,
        context: Option<String>,
    ) -> FailureContext {
        FailureContext {
            id,
            failure_type: failure_type.to_string(),
            source: "manual".to_string(),
            task,
            project_dir: project_dir.display().to_string(),
            run_id: None,
            attempt: None,
            captured_at: chrono::Local::now().to_rfc3339(),
            test_command: None,
            tests: Vec::new(),
            failing_ids: Vec::new(),
            test_summary: String::new(),
            diff: String::new(),
            agent_status: None,
            agent_message: None,
            description: Some(description),
            context,
        }
    }

    /// The payload for the teacher, within `budget` characters, private files left out.
    pub fn render(&self, budget: usize, private_files: &[String]) -> String {
        let mut out = String::new();
        let task = clip(&self.task, budget / 8);
        out.push_str(&format!("## Task\n{task}\n\n"));
        if let Some(d) = &self.description {
            out.push_str(&format!("## What went wrong\n{}\n\n", clip(d, budget / 4)));
        }
        if let Some(c) = &self.context {
            out.push_str(&format!("## Context\n{}\n\n", clip(c, budget / 6)));
        }
        if let Some(status) = &self.agent_status {
            out.push_str(&format!("## Agent\nThe agent {status}.\n\n"));
        }
        let ids: Vec<&str> = if self.tests.is_empty() {
            self.failing_ids.iter().map(String::as_str).collect()
        } else {
            self.tests.iter().map(|t| t.id.as_str()).collect()
        };
        if !ids.is_empty() || self.test_command.is_some() {
            out.push_str("## Failing tests\n");
            if let Some(cmd) = &self.test_command {
                out.push_str(&format!("Command: `{cmd}`\n"));
            }
            let mut list = String::new();
            for t in &self.tests {
                list.push_str(&format!("- {} — {}\n", t.id, first_line(&t.message)));
            }
            if self.tests.is_empty() {
                for id in &ids {
                    list.push_str(&format!("- {id}\n"));
                }
            }
            out.push_str(&clip(&list, budget / 6));
            out.push('\n');
        }
        let summary = clip_tail(&self.test_summary, budget / 6);
        let message = self
            .agent_message
            .as_deref()
            .map(|m| clip(m, budget / 10))
            .unwrap_or_default();
        // What is left after the fixed parts is shared by evidence and diff.
        let fixed = out.len() + summary.len() + message.len() + 400;
        let rest = budget.saturating_sub(fixed);
        let diff = filter_diff(&self.diff, private_files);
        let evidence_budget = if diff.is_empty() { rest } else { rest / 2 };
        let evidence = self.evidence(evidence_budget);
        if !evidence.is_empty() {
            out.push_str("## Evidence\n");
            out.push_str(&evidence);
            out.push('\n');
        }
        if !summary.is_empty() {
            out.push_str(&format!("## Test summary\n```\n{summary}\n```\n\n"));
        }
        let diff_budget = budget.saturating_sub(out.len() + message.len() + 200);
        if !diff.trim().is_empty() {
            out.push_str(&format!(
                "## The agent's change\n```diff\n{}\n```\n\n",
                fit_diff(&diff, diff_budget)
            ));
        } else if self.agent_status.is_some() {
            out.push_str("## The agent's change\nThe agent changed no files.\n\n");
        }
        if !message.is_empty() {
            out.push_str(&format!("## The agent's final message\n{message}\n"));
        }
        out
    }

    /// The diff and the error logs on their own, within `budget` characters together, for
    /// protocols that send them as separate fields (the n8n webhook).
    pub fn parts(&self, budget: usize, private_files: &[String]) -> (String, String) {
        let mut logs = String::new();
        if let Some(d) = &self.description {
            logs.push_str(&format!("What went wrong:\n{}\n\n", clip(d, budget / 4)));
        }
        if let Some(c) = &self.context {
            logs.push_str(&format!("Context:\n{}\n\n", clip(c, budget / 6)));
        }
        let evidence = self.evidence(budget / 3);
        if !evidence.is_empty() {
            logs.push_str(&evidence);
        } else {
            for id in &self.failing_ids {
                logs.push_str(&format!("FAILED {id}\n"));
            }
        }
        let summary = clip_tail(&self.test_summary, budget / 6);
        if !summary.is_empty() {
            logs.push_str(&format!("\n{summary}\n"));
        }
        let diff = filter_diff(&self.diff, private_files);
        let diff = fit_diff(&diff, budget.saturating_sub(logs.len()).max(budget / 3));
        (diff, logs.trim_end().to_string())
    }

    fn evidence(&self, budget: usize) -> String {
        if self.tests.is_empty() {
            return String::new();
        }
        let full: Vec<String> = self.tests.iter().map(full_block).collect();
        if full.iter().map(String::len).sum::<usize>() <= budget {
            return full.concat();
        }
        // Not everything fits: each failure gets a fair share, and a block that does not
        // fit its share falls back to its location and error lines, which matter most.
        let compact: Vec<String> = self.tests.iter().map(compact_block).collect();
        let mut order: Vec<usize> = (0..full.len()).collect();
        order.sort_by_key(|&i| compact[i].len());
        let mut left = budget;
        let mut out = vec![String::new(); full.len()];
        for (n, &i) in order.iter().enumerate() {
            let fair = left / (full.len() - n).max(1);
            out[i] = if full[i].len() <= fair {
                full[i].clone()
            } else if compact[i].len() <= fair {
                compact[i].clone()
            } else {
                clip(&compact[i], fair.max(80))
            };
            left = left.saturating_sub(out[i].len());
        }
        out.concat()
    }
}

fn place_of(t: &TestFailure) -> String {
    match (&t.file, t.line) {
        (Some(f), Some(l)) => format!(" ({f}:{l})"),
        (Some(f), None) => format!(" ({f})"),
        _ => String::new(),
    }
}

/// A failure's whole evidence and captured output.
fn full_block(t: &TestFailure) -> String {
    let mut block = format!(
        "### {}{}\n```\n{}\n",
        t.id,
        place_of(t),
        t.evidence.trim_end()
    );
    if let Some(output) = &t.captured_output {
        block.push_str(&format!(
            "--- captured output ---\n{}\n",
            clip_tail(output, 800)
        ));
    }
    block.push_str("```\n");
    block
}

/// A failure's error lines only (pytest's `E` lines, else its message).
fn compact_block(t: &TestFailure) -> String {
    let errors: Vec<&str> = t
        .evidence
        .lines()
        .filter(|l| l.trim_start().starts_with("E "))
        .take(4)
        .collect();
    let body = if errors.is_empty() {
        first_line(&t.message).to_string()
    } else {
        errors.join("\n")
    };
    format!("### {}{}\n```\n{body}\n```\n", t.id, place_of(t))
}

/// Splits `budget` fairly across `parts`: small parts whole, large ones clipped to an
/// equal share of what is left.
fn share(parts: &[String], budget: usize) -> Vec<String> {
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].len());
    let mut left = budget;
    let mut out = vec![String::new(); parts.len()];
    for (n, &i) in order.iter().enumerate() {
        let fair = left / (parts.len() - n).max(1);
        out[i] = if parts[i].len() <= fair {
            parts[i].clone()
        } else {
            clip(&parts[i], fair.max(120))
        };
        left = left.saturating_sub(out[i].len());
    }
    out
}

/// Drops the content of private files from a diff, keeping a line that says so.
fn filter_diff(diff: &str, private_files: &[String]) -> String {
    split_diff(diff)
        .into_iter()
        .map(|(name, body)| {
            // A rename moves content: private on either side keeps it back.
            let old_name = body
                .lines()
                .next()
                .and_then(|h| h.strip_prefix("diff --git a/"))
                .and_then(|h| h.split(" b/").next())
                .unwrap_or("");
            let private = |n: &str| matches_any(n, private_files.iter().map(String::as_str));
            if private(&name) || (!old_name.is_empty() && private(old_name)) {
                format!("diff --git a/{name} b/{name}\n[content not sent: private file]\n")
            } else {
                body.to_string()
            }
        })
        .collect()
}

/// Fits a diff in `budget`: noise files (lock files, minified) shrink to their header first,
/// then every file gets a fair share, earliest hunks first.
fn fit_diff(diff: &str, budget: usize) -> String {
    if diff.len() <= budget {
        return diff.trim_end().to_string();
    }
    let files: Vec<String> = split_diff(diff)
        .into_iter()
        .map(|(name, body)| {
            if matches_any(&name, NOISE_FILES.iter().copied()) {
                let lines = body.lines().count();
                format!("diff --git a/{name} b/{name}\n[{lines} lines of generated file omitted]\n")
            } else {
                body.to_string()
            }
        })
        .collect();
    share(&files, budget)
        .into_iter()
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// (file name, its part of the diff) for each `diff --git` section.
fn split_diff(diff: &str) -> Vec<(String, &str)> {
    let mut starts: Vec<usize> = diff
        .match_indices("diff --git ")
        .filter(|(i, _)| *i == 0 || diff.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i)
        .collect();
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    let mut parts = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(diff.len());
        let body = &diff[start..end];
        if body.is_empty() {
            continue;
        }
        let header = body.lines().next().unwrap_or("");
        let name = header
            .rsplit(" b/")
            .next()
            .unwrap_or(header)
            .trim()
            .to_string();
        parts.push((name, body));
    }
    parts
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// Keeps the head and the tail of `s` within `max` characters, saying what was cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let note_room = 40;
    let keep = max.saturating_sub(note_room);
    let head = floor_char(s, keep / 2);
    let tail = ceil_char(s, s.len() - (keep - keep / 2));
    format!(
        "{}\n[... {} characters omitted ...]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

/// Keeps the end of `s` (where summaries are) within `max` characters.
pub fn clip_tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let start = ceil_char(s, s.len() - max.saturating_sub(40));
    format!("[... {start} characters omitted ...]\n{}", &s[start..])
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The kinds of problem a semantic reviewer reports: (kind, the failure type it becomes,
/// what it means).
pub const FINDING_KINDS: &[(&str, &str, &str)] = &[
    (
        "incomplete_task",
        "scope_error",
        "the task is only partly done",
    ),
    (
        "weakened_tests",
        "test_tampering",
        "tests were deleted, skipped or weakened to pass",
    ),
    (
        "unrelated_edits",
        "scope_error",
        "changes unrelated to the task",
    ),
    (
        "debug_leftovers",
        "quality_error",
        "debug output, commented-out code or TODOs left behind",
    ),
    (
        "wrong_layer",
        "architecture_error",
        "the fix is in the wrong place (symptom patched, not cause)",
    ),
];

/// One problem a semantic reviewer found in a passing attempt; it becomes a failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `incomplete_task`, `weakened_tests`, `unrelated_edits`, `debug_leftovers`,
    /// `wrong_layer`, or `other`.
    pub kind: String,
    /// One sentence.
    pub summary: String,
    /// The diff lines that show it.
    #[serde(default)]
    pub evidence: String,
    /// The file, where one is named.
    #[serde(default)]
    pub file: Option<String>,
    /// 0.0 to 1.0.
    pub confidence: f64,
}

impl Finding {
    /// The failure type the finding becomes (`scope_error`, `test_tampering`, …).
    pub fn failure_type(&self) -> &'static str {
        FINDING_KINDS
            .iter()
            .find(|(k, _, _)| *k == self.kind)
            .map_or("other", |(_, t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(id: &str, evidence: &str) -> TestFailure {
        TestFailure {
            id: id.into(),
            kind: "failure".into(),
            file: Some("tests/test_calc.py".into()),
            line: Some(4),
            message: "assert 0 is None".into(),
            evidence: evidence.into(),
            captured_output: None,
        }
    }

    fn context(tests: Vec<TestFailure>, diff: String, summary: &str) -> FailureContext {
        FailureContext {
            id: "f1".into(),
            failure_type: "test_failure".into(),
            source: "pytest".into(),
            task: "Fix safe_divide".into(),
            project_dir: "/p".into(),
            run_id: None,
            attempt: Some(1),
            captured_at: "2026-01-01T00:00:00Z".into(),
            test_command: Some("pytest".into()),
            tests,
            failing_ids: vec![],
            test_summary: summary.into(),
            diff,
            agent_status: Some("finished".into()),
            agent_message: Some("Done.".into()),
            description: None,
            context: None,
        }
    }

    #[test]
    fn huge_diff_never_pushes_out_ids_evidence_or_summary() {
        let tests: Vec<TestFailure> = (0..30)
            .map(|i| {
                failure(
                    &format!("tests/t.py::test_{i}"),
                    &format!("E   assert {i} == -{i}"),
                )
            })
            .collect();
        let mut diff = String::new();
        for f in 0..20 {
            diff.push_str(&format!(
                "diff --git a/src/m{f}.py b/src/m{f}.py\n@@ -1 +1 @@\n"
            ));
            for l in 0..2000 {
                diff.push_str(&format!("+line {l} of file {f}\n"));
            }
        }
        let summary =
            "=== short test summary info ===\nFAILED tests/t.py::test_0\n=== 30 failed in 1s ===";
        let ctx = context(tests, diff, summary);
        let out = ctx.render(16_000, &[]);
        assert!(out.len() <= 16_500, "{}", out.len());
        for i in 0..30 {
            assert!(
                out.contains(&format!("tests/t.py::test_{i} ")),
                "id {i} missing"
            );
        }
        for i in 0..30 {
            assert!(
                out.contains(&format!("E   assert {i} == -{i}")),
                "assertion {i} missing"
            );
        }
        assert!(out.contains("=== 30 failed in 1s ==="));
        // Every file of the diff is represented, not only the first ones.
        for f in 0..20 {
            assert!(out.contains(&format!("src/m{f}.py")), "file {f} missing");
        }
    }

    #[test]
    fn private_files_are_not_sent() {
        let diff = "diff --git a/.env b/.env\n+API_KEY=abc\ndiff --git a/app.py b/app.py\n+x = 1\n";
        let ctx = context(vec![], diff.into(), "");
        let private: Vec<String> = DEFAULT_PRIVATE_FILES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = ctx.render(16_000, &private);
        assert!(!out.contains("API_KEY=abc"));
        assert!(out.contains("[content not sent: private file]"));
        assert!(out.contains("+x = 1"));
    }

    #[test]
    fn globs_with_a_slash_match_paths() {
        assert!(matches_any("config/secrets/prod.yml", ["config/secrets/*"]));
        assert!(matches_any(
            "app/config/secrets/prod.yml",
            ["config/secrets/*"]
        ));
        assert!(matches_any("deploy/prod/values.yaml", ["**/prod/*.yaml"]));
        assert!(!matches_any("config/public/a.yml", ["config/secrets/*"]));
        assert!(matches_any(
            "home/.docker/config.json",
            [".docker/config.json"]
        ));
        assert!(!matches_any("src/config.json", [".docker/config.json"]));
    }

    #[test]
    fn a_private_file_renamed_to_a_public_name_stays_private() {
        let diff = "diff --git a/.env b/settings.txt\nsimilarity index 90%\nrename from .env\nrename to settings.txt\n+TOKEN=abc\n";
        let out = filter_diff(diff, &[".env*".to_string()]);
        assert!(!out.contains("TOKEN=abc"), "{out}");
    }

    #[test]
    fn clip_is_char_safe() {
        let s = "é".repeat(1000);
        let c = clip(&s, 101);
        assert!(c.contains("omitted"));
        let t = clip_tail(&s, 101);
        assert!(t.ends_with('é'));
    }
}
