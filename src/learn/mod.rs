//! The learning layer: a failure becomes a rule. Failure → redact → the teacher (with the
//! prompt its type routes to) → parse → the store (dedup, merge, conflict; see [`curate`]) →
//! the instruction files rendered from it. The loop, semantic review, `report-failure`,
//! `capture`, the hook and `learn` all call down into it.

pub mod curate;

use crate::events::Event;
use crate::failure::FailureContext;
use crate::process::CancelToken;
use crate::record::{Record, RecordError};
use crate::redact::Redactor;
use crate::rules::targets::RulesTargets;
use crate::store::{FailureStatus, LearnOutcome, Provenance, StoredFailure};
use crate::teacher::{self, Teacher, prompt};
use curate::{CurateError, Curation};

/// How failures become rules; shared by `run` and `learn`.
pub struct Learner<'a> {
    /// The teacher, or why there is none (failures then stay pending).
    pub teacher: Result<&'a dyn Teacher, String>,
    /// The instruction files rules go to (`rules.targets`, else the agent's own file).
    pub rules: RulesTargets,
    /// Characters of failure context sent to the teacher.
    pub context_budget: usize,
    /// File-name patterns whose content is never sent.
    pub private_files: Vec<String>,
    /// Failure type → the teacher's system prompt (`failure_prompts`).
    pub prompts: prompt::Router,
    /// Removes secrets from everything sent (built-in and `redaction.patterns`).
    pub redactor: &'a Redactor,
    /// How learned rules are kept: review mode, scope, budget (see `learn::curate`).
    pub curation: Curation,
}

/// What became of one failure.
pub enum Lesson {
    /// A rule, ready to write.
    Learned(Box<(teacher::Learned, StoredFailure)>),
    /// No rule; the failure is kept as pending.
    Pending(Box<StoredFailure>),
}

/// A failure that could not be kept, or a rule that could not be stored or written.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The record under `.promptloop/` could not be written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The rule store (or a file rendered from it) could not be updated.
    #[error(transparent)]
    Curate(#[from] CurateError),
}

impl<'a> Learner<'a> {
    /// Exactly what the teacher gets for `failure` (the prompt for its type, the failure
    /// redacted and compacted, the rules already known), and how many secrets were removed.
    pub fn lesson(&self, failure: &FailureContext) -> (teacher::Lesson, usize) {
        // Redacted field by field before anything is compacted (a clipped secret could slip
        // past its pattern), then the whole payload once more.
        let (clean, removed) = self.redactor.redact_failure(failure);
        let payload = clean.render(self.context_budget, &self.private_files);
        let redacted = self.redactor.redact(&payload);
        let (diff, error_logs) = clean.parts(self.context_budget, &self.private_files);
        let parts = prompt::LessonParts {
            task: clean.task.clone(),
            diff: self.redactor.redact(&diff).text,
            error_logs: self.redactor.redact(&error_logs).text,
            description: clean.description.clone(),
            context: clean.context.clone(),
        };
        // Rules already in the file, so the teacher does not repeat one; redacted too.
        let known: Vec<String> = self
            .rules
            .known_rules()
            .iter()
            .map(|r| self.redactor.redact(r).text)
            .collect();
        // Reviewer findings are not test failures: they get the prompt written for them.
        let routed = if failure.source == "semantic" {
            self.prompts.route(prompt::SEMANTIC_FINDING_TYPE)
        } else {
            self.prompts.route(&failure.failure_type)
        };
        let lesson = prompt::lesson(
            &routed,
            &failure.failure_type,
            &redacted.text,
            parts,
            &known,
        );
        (lesson, removed.count() + redacted.count())
    }

    /// Saves `failure` as pending, asks the teacher, and returns the rule (not yet written).
    pub fn analyse(
        &self,
        failure: FailureContext,
        previous_tries: u32,
        record: &Record,
        emit: &mut dyn FnMut(Event),
        cancel: &CancelToken,
    ) -> Result<Lesson, LearnError> {
        let (lesson, redactions) = self.lesson(&failure);
        let fingerprints = crate::fingerprint::of_context(&failure);
        let recurrences = if previous_tries == 0 {
            record.note_recurrences(&fingerprints, &failure.id)?
        } else {
            // `promptloop learn` retrying a pending failure: it was counted when captured.
            Vec::new()
        };
        let mut stored = StoredFailure {
            status: FailureStatus::Pending,
            context: failure,
            last_error: None,
            tries: previous_tries,
            rule: None,
            // Where its rule goes, so `promptloop learn` writes it there later.
            rules_file: Some(self.rules.primary().display().to_string()),
            teacher: None,
            teacher_answer: None,
            fingerprints,
            recurrences: 0,
            last_recurrence: None,
            recurrence_of: recurrences.first().map(|r| r.original.clone()),
        };
        // Kept before the teacher is asked: a crash or Ctrl-C while waiting loses nothing.
        record.save_failure(&stored)?;
        for r in recurrences {
            emit(Event::FailureRecurred {
                failure_id: stored.context.id.clone(),
                original_failure_id: r.original,
                fingerprint: r.fingerprint,
                rule: r.rule,
                count: r.count,
            });
        }
        emit(Event::FailureCaptured {
            attempt: stored.context.attempt.unwrap_or(0),
            failure_id: stored.context.id.clone(),
            failure_type: stored.context.failure_type.clone(),
            payload_chars: lesson.user.len(),
            redactions,
        });
        let teacher = match &self.teacher {
            Ok(t) => *t,
            Err(why) => {
                stored.last_error = Some(why.clone());
                record.save_failure(&stored)?;
                emit(Event::FailurePending {
                    failure_id: stored.context.id.clone(),
                    reason: why.clone(),
                });
                return Ok(Lesson::Pending(Box::new(stored)));
            }
        };
        emit(Event::TeacherStarted {
            failure_id: stored.context.id.clone(),
            teacher: teacher.name(),
        });
        stored.tries += 1;
        stored.teacher = Some(teacher.name());
        let asked = std::time::Instant::now();
        let answer = teacher::learn(teacher, &lesson, &stored.context, cancel);
        let took = asked.elapsed().as_secs_f64();
        match &answer {
            Ok(learned) => tracing::info!(
                "teacher {} answered in {took:.1}s ({}, {} input / {} output tokens)",
                teacher.name(),
                learned.reply.model.as_deref().unwrap_or("model unknown"),
                learned
                    .reply
                    .input_tokens
                    .map_or("?".into(), |t| t.to_string()),
                learned
                    .reply
                    .output_tokens
                    .map_or("?".into(), |t| t.to_string()),
            ),
            Err(e) => tracing::warn!("teacher {} failed after {took:.1}s: {e:#}", teacher.name()),
        }
        match answer {
            Ok(learned) => {
                stored.teacher_answer = Some(learned.reply.text.clone());
                Ok(Lesson::Learned(Box::new((learned, stored))))
            }
            Err(e) => {
                let reason = format!("{e:#}");
                stored.last_error = Some(reason.clone());
                record.save_failure(&stored)?;
                emit(Event::FailurePending {
                    failure_id: stored.context.id.clone(),
                    reason,
                });
                Ok(Lesson::Pending(Box::new(stored)))
            }
        }
    }

    /// Learns a rule into the store (dedup, merge, conflict), renders the rules file from
    /// it, and marks its failure learned. True when the file gained the rule.
    pub fn write(
        &self,
        learned: &teacher::Learned,
        mut stored: StoredFailure,
        record: &Record,
        emit: &mut dyn FnMut(Event),
    ) -> Result<bool, LearnError> {
        let c = &stored.context;
        let provenance = Provenance {
            failure_id: Some(c.id.clone()),
            failure_type: c.failure_type.clone(),
            source: c.source.clone(),
            task: Some(c.task.clone()),
            teacher: stored.teacher.clone(),
            model: learned.reply.model.clone(),
            run_id: c.run_id.clone(),
            learned_at: chrono::Local::now().to_rfc3339(),
            text: String::new(),
        };
        let project_dir = record.dir().parent().unwrap_or(record.dir());
        let report = curate::learn_for_loop(
            &self.curation,
            record.store(),
            project_dir,
            &self.rules.paths(),
            &learned.rule,
            provenance,
            self.teacher.as_ref().ok().copied(),
        )?;
        let added = report.written();
        stored.status = FailureStatus::Learned;
        stored.rule = Some(learned.rule.clone());
        stored.rules_file = Some(self.rules.primary().display().to_string());
        stored.last_error = None;
        record.save_failure(&stored)?;
        let (action, note) = match &report.outcome {
            LearnOutcome::Added { id, status } if *status == crate::store::Status::Proposed => (
                "proposed",
                Some(format!(
                    "review mode: `promptloop rules approve {id}` writes it"
                )),
            ),
            LearnOutcome::Added { .. } => ("added", None),
            LearnOutcome::Merged { id, status, .. } => (
                "merged",
                Some(format!(
                    "the same lesson as {id} ({status}); its count grew"
                )),
            ),
            LearnOutcome::Conflict { id, with } => (
                "conflict",
                Some(format!(
                    "contradicts {with}; kept as proposed: `promptloop rules show {id}`"
                )),
            ),
        };
        emit(Event::RuleLearned {
            failure_id: stored.context.id.clone(),
            rule: learned.rule.clone(),
            file: self.rules.primary().display().to_string(),
            files: self.rules.display(),
            added,
            rule_id: report.outcome.id().to_string(),
            action: action.to_string(),
            note,
        });
        Ok(added)
    }
}
