//! Semantic review: after an attempt whose tests pass, a reviewer LLM (the teacher's
//! connection, its own prompt) reads the task, the diff and the agent's final message and
//! names the problems tests do not catch. Confident findings become failures and go to the
//! teacher like any other.

use crate::events::Event;
use crate::failure::{FINDING_KINDS as KINDS, FailureContext, Finding};
use crate::learn::{LearnError, Learner, Lesson as LearnedLesson};
use crate::process::CancelToken;
use crate::record::Record;
use crate::redact::Redactor;
use crate::teacher::prompt::LessonParts;
use crate::teacher::{Lesson, Teacher, TeacherError, TeacherReply};

const SYSTEM: &str = "\
You review the finished work of an AI coding agent. The agent was given a task in a software \
project and changed the code; the project's tests pass. Your job is to find the problems the \
tests do not catch:

- incomplete_task: the task is only partly done (a requirement of the task is not addressed).
- weakened_tests: tests were deleted, skipped, commented out, or their assertions weakened so \
that they pass.
- unrelated_edits: changes that have nothing to do with the task.
- debug_leftovers: debug prints, commented-out code, stray TODOs or temporary files left behind.
- wrong_layer: the fix patches a symptom in the wrong place instead of the cause.

Report only what the diff shows; quote the lines that prove each finding. Do not report style \
preferences or hypothetical risks. A clean change has no findings.

Answer with JSON only, no prose, in exactly this shape:
{\"findings\": [{\"kind\": \"<one of the kinds above>\", \"summary\": \"<one sentence>\", \
\"evidence\": \"<the diff lines that show it>\", \"file\": \"<path or null>\", \
\"confidence\": <0.0 to 1.0>}]}";

/// What the reviewer said, with the usage of the call.
#[derive(Clone, Debug)]
pub struct Review {
    /// Every finding, most confident first.
    pub findings: Vec<Finding>,
    /// The raw reply (text, model, tokens).
    pub reply: TeacherReply,
}

/// A review that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The reviewer could not be asked.
    #[error(transparent)]
    Teacher(#[from] TeacherError),
    /// The answer was not the JSON asked for.
    #[error("read the reviewer's findings: {0}")]
    BadAnswer(String),
}

/// Asks `teacher` to review `attempt` (its task, diff, agent message and test summary),
/// sending at most `budget` characters, redacted, private files left out.
pub fn review(
    teacher: &dyn Teacher,
    attempt: &FailureContext,
    budget: usize,
    private_files: &[String],
    redactor: &Redactor,
    cancel: &CancelToken,
) -> Result<Review, ReviewError> {
    // Field by field before compaction (a clipped secret could slip past its pattern), then
    // the whole payload once more, as for every teacher request.
    let (clean, _) = redactor.redact_failure(attempt);
    let payload = redactor.redact(&clean.render(budget, private_files)).text;
    let (diff, error_logs) = clean.parts(budget, private_files);
    let lesson = Lesson {
        system: SYSTEM.to_string(),
        user: format!("# The finished attempt\n\n{payload}"),
        failure_type: "semantic_review".to_string(),
        prompt_name: "semantic_review".to_string(),
        parts: LessonParts {
            task: clean.task.clone(),
            diff: redactor.redact(&diff).text,
            error_logs: redactor.redact(&error_logs).text,
            description: None,
            context: None,
        },
        known_rules: Vec::new(),
    };
    let reply = teacher.ask(&lesson, attempt, None, cancel)?;
    let mut findings = parse_findings(&reply.text)?;
    findings.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Ok(Review { findings, reply })
}

/// Reads `{"findings": [...]}` (or a bare list) out of an answer, code fences and prose
/// around it allowed.
pub fn parse_findings(text: &str) -> Result<Vec<Finding>, ReviewError> {
    let start = text.find(['{', '[']);
    let end = text.rfind(['}', ']']);
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ReviewError::BadAnswer("no JSON in the answer".into()));
    };
    if end < start {
        return Err(ReviewError::BadAnswer("no JSON in the answer".into()));
    }
    let value: serde_json::Value = serde_json::from_str(&text[start..=end])
        .map_err(|e| ReviewError::BadAnswer(format!("not JSON: {e}")))?;
    let list = match &value {
        serde_json::Value::Array(items) => items.clone(),
        other => other
            .get("findings")
            .and_then(|f| f.as_array())
            .cloned()
            .ok_or_else(|| ReviewError::BadAnswer("no `findings` list".into()))?,
    };
    let mut findings = Vec::new();
    for item in list {
        let text_of = |key: &str| {
            item.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let summary = text_of("summary");
        if summary.is_empty() {
            continue;
        }
        let kind = text_of("kind")
            .to_ascii_lowercase()
            .replace(['-', ' '], "_");
        let kind = if KINDS.iter().any(|(k, _, _)| *k == kind) {
            kind
        } else {
            "other".to_string()
        };
        let confidence = item
            .get("confidence")
            .and_then(|c| c.as_f64())
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        let file = Some(text_of("file")).filter(|f| !f.is_empty() && f != "null");
        findings.push(Finding {
            kind,
            summary,
            evidence: text_of("evidence"),
            file,
            confidence,
        });
    }
    Ok(findings)
}

/// How the review runs inside `promptloop run` (from the `semantic:` settings).
#[derive(Clone, Debug)]
pub struct SemanticPlan {
    /// Findings below this confidence are reported, not learned from.
    pub min_confidence: f64,
    /// Findings learned from per attempt, most confident first.
    pub max_findings: u32,
}

/// What a review changed.
#[derive(Clone, Debug, Default)]
pub struct ReviewOutcome {
    /// Findings at or above the threshold.
    pub accepted: usize,
    /// Rules written.
    pub rules_learned: u32,
    /// Findings kept pending (teacher failed).
    pub pending: u32,
}

/// Reviews a passing attempt and sends each confident finding through `learner`. A review
/// that fails is reported and the run goes on: the tests passed.
pub fn review_and_learn(
    plan: &SemanticPlan,
    learner: &Learner<'_>,
    attempt_context: &FailureContext,
    attempt: u32,
    record: &Record,
    emit: &mut dyn FnMut(Event),
    cancel: &CancelToken,
) -> Result<ReviewOutcome, LearnError> {
    let mut outcome = ReviewOutcome::default();
    let teacher = match &learner.teacher {
        Ok(t) => *t,
        Err(why) => {
            emit(Event::ReviewFailed {
                attempt,
                reason: format!("no reviewer: {why}"),
            });
            return Ok(outcome);
        }
    };
    let result = review(
        teacher,
        attempt_context,
        learner.context_budget,
        &learner.private_files,
        learner.redactor,
        cancel,
    );
    let review = match result {
        Ok(r) => r,
        Err(e) => {
            emit(Event::ReviewFailed {
                attempt,
                reason: format!("{e:#}"),
            });
            return Ok(outcome);
        }
    };
    let accepted: Vec<&Finding> = review
        .findings
        .iter()
        .filter(|f| f.confidence >= plan.min_confidence)
        .take(plan.max_findings as usize)
        .collect();
    outcome.accepted = accepted.len();
    let model = review.reply.model.clone();
    emit(Event::ReviewFinished {
        attempt,
        findings: review.findings.clone(),
        accepted: accepted.len(),
        cost_usd: match (
            &model,
            review.reply.input_tokens,
            review.reply.output_tokens,
        ) {
            (Some(m), Some(i), Some(o)) => estimate_cost(m, i, o),
            _ => None,
        },
        model,
        input_tokens: review.reply.input_tokens,
        output_tokens: review.reply.output_tokens,
    });
    for (n, finding) in accepted.into_iter().enumerate() {
        let id = format!("{}-review{}", attempt_context.id, n + 1);
        let failure = to_failure(finding, attempt_context, id);
        match learner.analyse(failure, 0, record, emit, cancel)? {
            LearnedLesson::Learned(boxed) => {
                let (learned, stored) = *boxed;
                if learner.write(&learned, stored, record, emit)? {
                    outcome.rules_learned += 1;
                }
            }
            LearnedLesson::Pending(_) => outcome.pending += 1,
        }
    }
    Ok(outcome)
}

/// A failure for the teacher from one finding on `attempt`.
pub fn to_failure(finding: &Finding, attempt: &FailureContext, id: String) -> FailureContext {
    let what = KINDS
        .iter()
        .find(|(k, _, _)| *k == finding.kind)
        .map_or("a quality problem", |(_, _, d)| d);
    let mut description = format!(
        "The tests passed, but a reviewer found {what} ({}, confidence {:.2}): {}",
        finding.kind, finding.confidence, finding.summary
    );
    if let Some(file) = &finding.file {
        description.push_str(&format!(" (in {file})"));
    }
    FailureContext {
        id,
        failure_type: finding.failure_type().to_string(),
        source: "semantic".into(),
        description: Some(description),
        context: (!finding.evidence.is_empty()).then(|| finding.evidence.clone()),
        ..attempt.clone()
    }
}

/// US dollars per million input and output tokens for the Anthropic models whose price is
/// published; `None` for others (the token counts are still recorded).
pub fn estimate_cost(model: &str, input_tokens: u64, output_tokens: u64) -> Option<f64> {
    const PRICES: &[(&str, f64, f64)] = &[
        ("claude-opus-4-5", 5.0, 25.0),
        ("claude-opus-4-1", 15.0, 75.0),
        ("claude-opus-4", 15.0, 75.0),
        ("claude-sonnet-4", 3.0, 15.0),
        ("claude-3-7-sonnet", 3.0, 15.0),
        ("claude-3-5-sonnet", 3.0, 15.0),
        ("claude-haiku-4-5", 1.0, 5.0),
        ("claude-3-5-haiku", 0.8, 4.0),
        ("claude-3-haiku", 0.25, 1.25),
    ];
    let (_, input, output) = PRICES.iter().find(|(p, _, _)| model.starts_with(p))?;
    Some((input_tokens as f64 * input + output_tokens as f64 * output) / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_read_from_fenced_json_and_clamped() {
        let text = "Here you go:\n```json\n{\"findings\": [{\"kind\": \"weakened-tests\", \"summary\": \"test_b was deleted\", \"evidence\": \"-def test_b\", \"file\": \"tests/test_b.py\", \"confidence\": 1.4}, {\"kind\": \"vibes\", \"summary\": \"odd\", \"confidence\": 0.2}, {\"kind\": \"x\"}]}\n```";
        let f = parse_findings(text).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].kind, "weakened_tests");
        assert_eq!(f[0].failure_type(), "test_tampering");
        assert_eq!(f[0].confidence, 1.0);
        assert_eq!(f[1].kind, "other");
        assert_eq!(f[1].failure_type(), "other");
        assert!(parse_findings("{\"findings\": []}").unwrap().is_empty());
        assert!(parse_findings("Looks fine to me.").is_err());
    }

    #[test]
    fn cost_is_estimated_for_known_models_only() {
        let c = estimate_cost("claude-sonnet-4-5", 1_000_000, 100_000).unwrap();
        assert!((c - 4.5).abs() < 1e-9);
        assert_eq!(estimate_cost("gpt-x", 10, 10), None);
    }
}
