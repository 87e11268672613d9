//! The views: Inbox, Rules (and one rule with its provenance), Failures, Report a failure,
//! Runs (and one run, live while it runs), Charts. Each reads the store on a blocking
//! thread and passes every text through the redactor before a template sees it.

use std::collections::BTreeSet;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::view::{PageError, record_id, respond, rule_id, short};
use super::{App, charts, live};
use crate::cli::report::{MANUAL_TYPES, TYPE_HELP};
use crate::learn::curate::Curator;
use crate::rules::file::SECTION_HEADING;
use crate::store::{
    FailureStatus, Provenance, RuleFilter, RuleStore, Status, StoredFailure, StoredRule,
};

/// The curator for the project's store, with the settings' budget and review mode.
pub(super) fn curator<'a>(app: &App, store: &'a dyn RuleStore) -> Curator<'a> {
    Curator::for_settings(store, app.project_dir.clone(), &app.loaded.settings.rules)
}

/// `2026-11-24T21:40:05+01:00` → `2026-11-24 21:40`.
pub(super) fn when(stamp: &str) -> String {
    let s: String = stamp.chars().take(16).collect();
    s.replacen('T', " ", 1)
}

/// One arrival of a rule, for a page.
fn provenance_json(app: &App, p: &Provenance) -> Value {
    json!({
        "failure_id": p.failure_id,
        "failure_type": p.failure_type,
        "source": app.clean(&p.source),
        "task": app.clean_opt(p.task.as_deref()),
        "teacher": p.teacher,
        "model": p.model,
        "run_id": p.run_id,
        "learned_at": when(&p.learned_at),
        "text": app.clean(&p.text),
    })
}

/// A rule with its evidence, for a page.
pub(super) fn rule_json(app: &App, r: &StoredRule) -> Value {
    json!({
        "id": r.id,
        "status": r.status.as_str(),
        "scope": r.scope.as_str(),
        "category": app.clean_opt(r.rule.category.as_deref()),
        "rule": app.clean(&r.rule.rule),
        "when": app.clean(&r.rule.when),
        "why": app.clean(&r.rule.why),
        "note": app.clean_opt(r.note.as_deref()),
        "conflicts_with": r.conflicts_with,
        "targets": r.targets.iter().map(|t| app.clean(t)).collect::<Vec<_>>(),
        "learned": r.times_learned,
        "recurred": r.recurrences,
        "validated": r.times_validated,
        "created_at": when(&r.created_at),
        "updated_at": when(&r.updated_at),
        "last_learned_at": when(&r.last_learned_at),
        "first": r.provenance.first().map(|p| provenance_json(app, p)),
    })
}

/// A failure with its evidence, for a page.
pub(super) fn failure_json(app: &App, f: &StoredFailure) -> Value {
    let c = &f.context;
    json!({
        "id": c.id,
        "status": match f.status { FailureStatus::Pending => "pending", FailureStatus::Learned => "learned" },
        "failure_type": c.failure_type,
        "source": app.clean(&c.source),
        "task": app.clean(&c.task),
        "task_short": short(&app.clean(&c.task), 90),
        "run_id": c.run_id,
        "attempt": c.attempt,
        "captured_at": when(&c.captured_at),
        "test_command": app.clean_opt(c.test_command.as_deref()),
        "tests": c.tests.iter().map(|t| json!({
            "id": app.clean(&t.id),
            "kind": t.kind,
            "file": app.clean_opt(t.file.as_deref()),
            "line": t.line,
            "message": app.clean(&t.message),
            "evidence": app.clean(&t.evidence),
        })).collect::<Vec<_>>(),
        "failing_ids": c.failing_ids.iter().map(|t| app.clean(t)).collect::<Vec<_>>(),
        "summary": app.clean(&c.test_summary),
        "agent_status": app.clean_opt(c.agent_status.as_deref()),
        "agent_message": app.clean_opt(c.agent_message.as_deref()),
        "description": app.clean_opt(c.description.as_deref()),
        "description_short": c.description.as_deref().map(|d| short(&app.clean(d), 120)),
        "what": c
            .description
            .as_deref()
            .or(c.tests.first().map(|t| t.id.as_str()))
            .or(c.failing_ids.first().map(String::as_str))
            .map(|w| short(&app.clean(w), 90)),
        "context": app.clean_opt(c.context.as_deref()),
        "last_error": app.clean_opt(f.last_error.as_deref()),
        "tries": f.tries,
        "teacher": f.teacher,
        "teacher_answer": app.clean_opt(f.teacher_answer.as_deref()),
        "rule": f.rule.as_ref().map(|r| json!({
            "category": app.clean_opt(r.category.as_deref()),
            "rule": app.clean(&r.rule),
            "when": app.clean(&r.when),
            "why": app.clean(&r.why),
        })),
        "rules_file": app.clean_opt(f.rules_file.as_deref()),
        "recurrences": f.recurrences,
        "recurrence_of": f.recurrence_of,
    })
}

/// The attempt's change, from the snapshots the run kept
/// (`refs/promptloop/runs/<run>/attempt-<n>/{before,after}`), private files left out and
/// secrets redacted; `None` when the refs are gone (or the project is not a git work tree).
pub(super) fn attempt_diff(app: &App, run_id: &str, attempt: u32) -> Option<String> {
    let repo = crate::git::Repo::open(&app.project_dir).ok()?;
    let snap = |side: &str| {
        repo.resolve_snapshot(&format!(
            "refs/promptloop/runs/{run_id}/attempt-{attempt}/{side}"
        ))
        .ok()
        .flatten()
    };
    let (before, after) = (snap("before")?, snap("after")?);
    let diff = repo.diff(&before, &after).ok()?;
    Some(app.clean(&public_diff(&diff, &app.private_files)))
}

/// A diff as lines with their kind (`add`, `del`, `hunk`, `file`), for the page.
pub(super) fn diff_lines(diff: &str) -> Vec<Value> {
    diff.lines()
        .map(|l| {
            let class = if l.starts_with("diff --git") {
                "file"
            } else if l.starts_with("@@") {
                "hunk"
            } else if l.starts_with('+') && !l.starts_with("+++") {
                "add"
            } else if l.starts_with('-') && !l.starts_with("---") {
                "del"
            } else {
                ""
            };
            json!({"c": class, "t": l})
        })
        .collect()
}

/// A diff without the files whose names say they are private (`.env`, keys, …), each
/// replaced by one line, cut at 200,000 characters.
fn public_diff(diff: &str, private: &[String]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in diff.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            let path = rest.split(" b/").next().unwrap_or(rest).trim();
            skipping = crate::pattern::matches_any(path, private.iter().map(String::as_str));
            if skipping {
                out.push_str(&format!(
                    "diff --git a/{path} b/{path}\n(a private file: its change is not shown)\n"
                ));
                continue;
            }
        }
        if !skipping {
            out.push_str(line);
        }
    }
    const MAX: usize = 200_000;
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n… (cut: the diff is longer)\n");
    }
    out
}

/// `?done=approved&id=r-…`: what the last action did, from a fixed list of phrases.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Done {
    done: Option<String>,
    id: Option<String>,
    other: Option<String>,
}

impl Done {
    fn message(&self) -> Option<String> {
        let id = self.id.as_deref().filter(|i| rule_id(i).is_ok())?;
        let other = self
            .other
            .as_deref()
            .filter(|i| rule_id(i).is_ok())
            .unwrap_or("the other rule");
        Some(match self.done.as_deref()? {
            "approved" => format!("Approved {id}: it is rendered into its files."),
            "rejected" => format!("Rejected {id}: it is retired and written nowhere."),
            "retired" => format!("Retired {id}: it left every file and stays in the store."),
            "edited" => format!("Edited {id}: its files are rendered again."),
            "unchanged" => format!("{id} is unchanged: the form said what it already says."),
            "replaced" => format!("Approved {id} and retired {other}, which it contradicted."),
            _ => return None,
        })
    }
}

/// `GET /`: proposed rules, conflicts side by side, the last changes to the files.
pub(super) async fn inbox(State(app): State<Arc<App>>, Query(done): Query<Done>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let proposed = store.list(&RuleFilter {
            statuses: vec![Status::Proposed],
            target: None,
        })?;
        let mut review = Vec::new();
        let mut conflicts = Vec::new();
        for r in &proposed {
            match &r.conflicts_with {
                Some(other) => conflicts.push(json!({
                    "new": rule_json(app, r),
                    "old": store.get(other).ok().map(|o| rule_json(app, &o)),
                })),
                None => review.push(rule_json(app, r)),
            }
        }
        let recent: Vec<Value> = store
            .file_changes(None, 6)?
            .iter()
            .map(|c| {
                json!({
                    "seq": c.seq,
                    "at": when(&c.at),
                    "target": app.clean(&c.target),
                    "reason": app.clean(&c.reason),
                    "shown": c.shown.len(),
                    "undone": c.undone_by.is_some(),
                })
            })
            .collect();
        let review_mode = app.loaded.settings.rules.review;
        Ok(app
            .page(
                &*store,
                "inbox.html",
                "inbox",
                "Inbox",
                json!({
                    "review": review,
                    "conflicts": conflicts,
                    "recent": recent,
                    "review_mode": review_mode,
                    "done": done.message(),
                }),
            )?
            .into_response())
    })
    .await
}

/// `GET /rules?q=&status=&category=&target=`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RulesQuery {
    q: Option<String>,
    status: Option<String>,
    category: Option<String>,
    target: Option<String>,
}

/// How many rules one page lists.
const RULES_SHOWN: usize = 500;

/// `GET /rules`: every rule with its evidence; search and filters.
pub(super) async fn rules(State(app): State<Arc<App>>, Query(q): Query<RulesQuery>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let all = store.list(&RuleFilter::default())?;
        let categories: BTreeSet<String> = all
            .iter()
            .filter_map(|r| r.rule.category.as_deref().map(|c| app.clean(c)))
            .collect();
        let targets: BTreeSet<String> = all
            .iter()
            .flat_map(|r| r.targets.iter().map(|t| app.clean(t)))
            .collect();
        let status = q
            .status
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "all")
            .and_then(Status::parse);
        let needle =
            q.q.as_deref()
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty());
        let category = q.category.as_deref().filter(|c| !c.is_empty());
        let target = q.target.as_deref().filter(|t| !t.is_empty());
        let matching: Vec<&StoredRule> = all
            .iter()
            .rev()
            .filter(|r| status.is_none_or(|s| r.status == s))
            .filter(|r| {
                category.is_none_or(|c| {
                    r.rule
                        .category
                        .as_deref()
                        .map(|rc| app.clean(rc))
                        .as_deref()
                        == Some(c)
                })
            })
            .filter(|r| target.is_none_or(|t| r.targets.iter().any(|rt| app.clean(rt) == t)))
            .filter(|r| {
                needle.as_deref().is_none_or(|n| {
                    [
                        r.id.as_str(),
                        &r.rule.rule,
                        &r.rule.when,
                        &r.rule.why,
                        r.rule.category.as_deref().unwrap_or(""),
                    ]
                    .iter()
                    .any(|field| app.clean(field).to_lowercase().contains(n))
                })
            })
            .collect();
        let counts = json!({
            "all": all.len(),
            "proposed": all.iter().filter(|r| r.status == Status::Proposed).count(),
            "active": all.iter().filter(|r| r.status == Status::Active).count(),
            "retired": all.iter().filter(|r| r.status == Status::Retired).count(),
        });
        let rows: Vec<Value> = matching
            .iter()
            .take(RULES_SHOWN)
            .map(|r| rule_json(app, r))
            .collect();
        Ok(app
            .page(
                &*store,
                "rules.html",
                "rules",
                "Rules",
                json!({
                    "rules": rows,
                    "matching": matching.len(),
                    "cut": matching.len() > RULES_SHOWN,
                    "counts": counts,
                    "categories": categories,
                    "targets": targets,
                    "q": q.q.clone().unwrap_or_default(),
                    "status": q.status.clone().unwrap_or_default(),
                    "category": q.category.clone().unwrap_or_default(),
                    "target": q.target.clone().unwrap_or_default(),
                }),
            )?
            .into_response())
    })
    .await
}

/// `GET /rules/{id}`: one rule, its evidence, and for each arrival the failure that taught
/// it with the attempt's diff.
pub(super) async fn rule(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let r = store.get(rule_id(&id)?)?;
        let failures = store.failures()?;
        let arrivals: Vec<Value> = r
            .provenance
            .iter()
            .map(|p| {
                let failure = p
                    .failure_id
                    .as_deref()
                    .and_then(|fid| failures.iter().find(|f| f.context.id == fid));
                let diff = failure.and_then(|f| {
                    let c = &f.context;
                    attempt_diff(app, c.run_id.as_deref()?, c.attempt?)
                });
                let stored_diff = failure
                    .map(|f| app.clean(&public_diff(&f.context.diff, &app.private_files)))
                    .filter(|d| !d.trim().is_empty());
                json!({
                    "arrival": provenance_json(app, p),
                    "failure": failure.map(|f| failure_json(app, f)),
                    "diff": diff.as_deref().map(diff_lines),
                    "stored_diff": stored_diff.as_deref().map(diff_lines),
                })
            })
            .collect();
        let conflict = r
            .conflicts_with
            .as_deref()
            .and_then(|o| store.get(o).ok())
            .map(|o| rule_json(app, &o));
        let title = format!("Rule {}", r.id);
        Ok(app
            .page(
                &*store,
                "rule.html",
                "rules",
                &title,
                json!({
                    "rule": rule_json(app, &r),
                    "arrivals": arrivals,
                    "conflict": conflict,
                    "done": done.message(),
                }),
            )?
            .into_response())
    })
    .await
}

/// The edit form's fields (the page's `csrf` field is ignored here).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub(super) struct EditForm {
    /// Rule text.
    #[serde(default)]
    pub(super) rule: String,
    /// When it applies.
    #[serde(default)]
    pub(super) when: String,
    /// Why.
    #[serde(default)]
    pub(super) why: String,
    /// Category ("" for none).
    #[serde(default)]
    pub(super) category: String,
    /// Target files, one a line.
    #[serde(default)]
    pub(super) targets: String,
}

impl EditForm {
    /// The form filled with the rule as it is.
    pub(super) fn of(app: &App, r: &StoredRule) -> EditForm {
        EditForm {
            rule: app.clean(&r.rule.rule),
            when: app.clean(&r.rule.when),
            why: app.clean(&r.rule.why),
            category: app.clean(r.rule.category.as_deref().unwrap_or("")),
            targets: r
                .targets
                .iter()
                .map(|t| app.clean(t))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The target keys the form names.
    pub(super) fn target_keys(&self, curator: &Curator<'_>) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for t in self
            .targets
            .split(['\n', ','])
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let key = curator.target(FsPath::new(t)).key;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// `r` as the form would leave it, made active (what the files would show).
    pub(super) fn applied(&self, curator: &Curator<'_>, r: &StoredRule) -> StoredRule {
        let mut edited = r.clone();
        edited.rule.rule = self.rule.trim().to_string();
        edited.rule.when = self.when.trim().to_string();
        edited.rule.why = self.why.trim().to_string();
        let category = self.category.trim();
        edited.rule.category = (!category.is_empty()).then(|| category.to_string());
        let keys = self.target_keys(curator);
        if !keys.is_empty() {
            edited.targets = keys;
        }
        edited.status = Status::Active;
        edited
    }
}

/// The edit page: the form and, for each target file, its section as it will be rendered
/// with the rule as the form says (and active).
pub(super) fn edit_page(
    app: &App,
    store: &dyn RuleStore,
    r: &StoredRule,
    form: &EditForm,
    problem: Option<String>,
) -> Result<Response, PageError> {
    let curator = curator(app, store);
    let edited = form.applied(&curator, r);
    let mut previews = Vec::new();
    for key in &edited.targets {
        let target = curator.target(FsPath::new(key));
        let mut ranked = store.ranked_for_target(key)?;
        ranked.retain(|other| other.id != r.id);
        ranked.push(edited.clone());
        ranked.sort_by(|a, b| {
            b.value()
                .cmp(&a.value())
                .then_with(|| b.last_learned_at.cmp(&a.last_learned_at))
                .then_with(|| a.id.cmp(&b.id))
        });
        let section = curator
            .preview(&target, &ranked)
            .map_err(|e| PageError::Internal(format!("{e:#}")))?;
        previews.push(match section {
            Some(s) => json!({
                "target": app.clean(key),
                "text": app.clean(&format!("{SECTION_HEADING}\n{}", s.body)),
                "shown": s.shown.contains(&r.id),
                "hidden": s.hidden,
                "over_budget": s.over_budget,
            }),
            None => json!({"target": app.clean(key), "text": null}),
        });
    }
    let title = format!("Edit {}", r.id);
    Ok(app
        .page(
            store,
            "edit.html",
            "rules",
            &title,
            json!({
                "rule": rule_json(app, r),
                "form": form,
                "previews": previews,
                "problem": problem,
            }),
        )?
        .into_response())
}

/// `GET /rules/{id}/edit`.
pub(super) async fn edit(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let r = store.get(rule_id(&id)?)?;
        edit_page(app, &*store, &r, &EditForm::of(app, &r), None)
    })
    .await
}

/// `GET /failures`: pending ones first, then learned ones.
pub(super) async fn failures(State(app): State<Arc<App>>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let mut all = store.failures()?;
        all.reverse();
        let (pending, learned): (Vec<&StoredFailure>, Vec<&StoredFailure>) =
            all.iter().partition(|f| f.status == FailureStatus::Pending);
        let teacher = app.loaded.settings.teacher.mode.as_str();
        Ok(app
            .page(
                &*store,
                "failures.html",
                "failures",
                "Failures",
                json!({
                    "pending": pending.iter().map(|f| failure_json(app, f)).collect::<Vec<_>>(),
                    "learned": learned.iter().map(|f| failure_json(app, f)).collect::<Vec<_>>(),
                    "teacher": teacher,
                }),
            )?
            .into_response())
    })
    .await
}

/// `GET /failures/{id}`: one failure's evidence, as a teacher would see it (redacted), the
/// attempt's diff and the rules it taught.
pub(super) async fn failure(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let id = record_id(&id)?;
        let failures = store.failures()?;
        let f = failures
            .iter()
            .find(|f| f.context.id == id)
            .ok_or_else(|| PageError::NotFound(format!("no failure {id}")))?;
        let diff = f
            .context
            .run_id
            .as_deref()
            .zip(f.context.attempt)
            .and_then(|(run, n)| attempt_diff(app, run, n));
        let stored_diff = app.clean(&public_diff(&f.context.diff, &app.private_files));
        let taught: Vec<Value> = store
            .list(&RuleFilter::default())?
            .iter()
            .filter(|r| {
                r.provenance
                    .iter()
                    .any(|p| p.failure_id.as_deref() == Some(id))
            })
            .map(|r| rule_json(app, r))
            .collect();
        let title = format!("Failure {id}");
        Ok(app
            .page(
                &*store,
                "failure.html",
                "failures",
                &title,
                json!({
                    "failure": failure_json(app, f),
                    "diff": diff.as_deref().map(diff_lines),
                    "stored_diff": (!stored_diff.trim().is_empty()).then(|| diff_lines(&stored_diff)),
                    "taught": taught,
                }),
            )?
            .into_response())
    })
    .await
}

/// The report form's fields.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub(super) struct ReportForm {
    /// One of the seven manual types.
    #[serde(default)]
    pub(super) failure_type: String,
    /// What went wrong.
    #[serde(default)]
    pub(super) description: String,
    /// What the agent should have known.
    #[serde(default)]
    pub(super) context: String,
    /// The task the agent had.
    #[serde(default)]
    pub(super) task: String,
}

/// The report page: the form (filled again after a problem).
pub(super) fn report_page(
    app: &App,
    store: &dyn RuleStore,
    form: &ReportForm,
    problem: Option<String>,
) -> Result<Response, PageError> {
    let types: Vec<Value> = MANUAL_TYPES
        .iter()
        .map(|t| {
            let help = TYPE_HELP
                .iter()
                .find(|(name, _)| name == t)
                .map_or("", |(_, h)| h);
            json!({"name": t, "help": help})
        })
        .collect();
    Ok(app
        .page(
            store,
            "report.html",
            "report",
            "Report a failure",
            json!({
                "types": types,
                "form": form,
                "problem": problem,
                "teacher": app.loaded.settings.teacher.mode.as_str(),
            }),
        )?
        .into_response())
}

/// `GET /report`.
pub(super) async fn report(State(app): State<Arc<App>>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        report_page(app, &*store, &ReportForm::default(), None)
    })
    .await
}

/// A run with its attempts, for a page.
fn run_json(app: &App, run: &crate::store::RunRow, attempts: &[crate::store::AttemptRow]) -> Value {
    json!({
        "id": run.id,
        "task": app.clean(&run.task),
        "task_short": short(&app.clean(&run.task), 100),
        "agent": run.agent,
        "teacher": run.teacher,
        "started": run.started_at.as_deref().map(when),
        "outcome": run.outcome.clone().unwrap_or_else(|| "unfinished".into()),
        "attempt_count": run.attempts.max(attempts.len() as u32),
        "rules_learned": run.rules_learned,
        "pending": run.pending,
        "cost": format!("{:.2}", run.cost_usd),
        "duration": run.duration_ms.map(|ms| crate::cli::secs(std::time::Duration::from_millis(ms))),
        "message": app.clean_opt(run.message.as_deref()),
        "attempts": attempts.iter().map(|a| json!({
            "n": a.attempt,
            "agent": a.agent_status,
            "changed": a.changed_files,
            "tests": a.tests_outcome.clone().unwrap_or_else(|| "not run".into()),
            "failing": a.failing,
            "failure_id": a.failure_id,
            "rule_id": a.rule_id,
            "reverted": a.reverted,
        })).collect::<Vec<_>>(),
    })
}

/// How many runs the Runs view lists.
const RUNS_SHOWN: usize = 200;

/// `GET /runs`: runs and their attempts, newest first, and the outcomes over time.
pub(super) async fn runs(State(app): State<Arc<App>>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let mut rows = Vec::new();
        let mut history = Vec::new();
        for run in store.runs(RUNS_SHOWN)? {
            let attempts = store.attempts(&run.id)?;
            rows.push(run_json(app, &run, &attempts));
            history.push((run, attempts));
        }
        history.reverse();
        let strip = charts::attempt_strip(&history);
        Ok(app
            .page(
                &*store,
                "runs.html",
                "runs",
                "Runs",
                json!({"runs": rows, "strip": strip}),
            )?
            .into_response())
    })
    .await
}

/// `GET /runs/{id}`: one run, its attempts and its events; live while it runs.
pub(super) async fn run(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let id = record_id(&id)?.to_string();
        let row = store
            .runs(usize::MAX >> 1)?
            .into_iter()
            .find(|r| r.id == id);
        let log = live::read_log(app, &id);
        if row.is_none() && log.is_none() {
            return Err(PageError::NotFound(format!("no run {id}")));
        }
        let attempts = store.attempts(&id)?;
        let run = row.map(|r| run_json(app, &r, &attempts));
        let (events, offset, finished) = match log {
            Some(log) => (log.events, log.offset, log.finished),
            None => (Vec::new(), 0, true),
        };
        let title = format!("Run {id}");
        Ok(app
            .page(
                &*store,
                "run.html",
                "runs",
                &title,
                json!({
                    "id": id,
                    "run": run,
                    "events": events,
                    "offset": offset,
                    "live": !finished,
                }),
            )?
            .into_response())
    })
    .await
}

/// `GET /charts`.
pub(super) async fn charts(State(app): State<Arc<App>>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let charts = charts::all(app, &*store)?;
        Ok(app
            .page(
                &*store,
                "charts.html",
                "charts",
                "Charts",
                json!({"charts": charts}),
            )?
            .into_response())
    })
    .await
}

/// Any other address.
pub(super) async fn not_found() -> Response {
    PageError::NotFound("there is no such page".into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_files_diff_is_left_out_and_the_rest_kept() {
        let diff = "diff --git a/.env b/.env\n+API_KEY=abc\ndiff --git a/app.py b/app.py\n+x = 1\n";
        let private = vec![".env*".to_string()];
        let out = public_diff(diff, &private);
        assert!(!out.contains("API_KEY"), "{out}");
        assert!(out.contains("(a private file: its change is not shown)"));
        assert!(out.contains("+x = 1"));
    }

    #[test]
    fn done_messages_come_from_a_fixed_list() {
        let d = Done {
            done: Some("approved".into()),
            id: Some("r-abc123".into()),
            other: None,
        };
        assert!(d.message().unwrap().contains("Approved r-abc123"));
        let bad = Done {
            done: Some("<script>".into()),
            id: Some("r-abc123".into()),
            other: None,
        };
        assert!(bad.message().is_none());
        let bad_id = Done {
            done: Some("approved".into()),
            id: Some("<b>hi</b>".into()),
            other: None,
        };
        assert!(bad_id.message().is_none());
    }
}
