//! What the page changes, each a POST with the CSRF token (checked by the guard before a
//! handler runs): approve, reject, retire, edit and replace rules through the curator;
//! learn the pending failures and report a new one through the learner. The same code
//! paths as `promptloop rules …`, `promptloop learn` and `promptloop report-failure`.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::pages::{EditForm, ReportForm, curator, edit_page, report_page};
use super::view::{PageError, respond, rule_id};
use crate::cli::rules::{Decision, decide, store_failure};
use crate::cli::{agents, report, teachers};
use crate::events::Event;
use crate::learn::Lesson;
use crate::process::CancelToken;
use crate::record::Record;
use crate::store::{FailureStatus, RuleEdit, StoredRule};

/// A decision's form: why (for reject and retire) and which page to go back to.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    back: String,
}

impl DecisionForm {
    fn reason(&self) -> Option<String> {
        Some(self.reason.trim().to_string()).filter(|r| !r.is_empty())
    }
}

/// Where to go after a decision: the rule's page, or the inbox.
fn back_to(back: &str, done: &str, id: &str) -> Response {
    let url = if back == "rule" {
        format!("/rules/{id}?done={done}&id={id}")
    } else {
        format!("/?done={done}&id={id}")
    };
    Redirect::to(&url).into_response()
}

async fn apply(app: Arc<App>, id: String, decision: Decision, back: String) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let (_, change, _) = decide(&curator(app, &*store), rule_id(&id)?, &decision)?;
        tracing::info!("page: {} {}", decision.verb(), change.rule_id);
        Ok(back_to(&back, decision.verb(), &change.rule_id))
    })
    .await
}

/// `POST /rules/{id}/approve`.
pub(super) async fn approve(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    apply(app, id, Decision::Approve, form.back).await
}

/// `POST /rules/{id}/reject`.
pub(super) async fn reject(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let decision = Decision::Reject(form.reason());
    apply(app, id, decision, form.back).await
}

/// `POST /rules/{id}/retire`.
pub(super) async fn retire(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let decision = Decision::Retire(form.reason());
    apply(app, id, decision, form.back).await
}

/// `POST /rules/{id}/replace`: a proposed rule that contradicts an active one wins: the
/// active one is retired first (so no file shows both), then the proposed one is approved.
pub(super) async fn replace(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let curator = curator(app, &*store);
        let new = store.get(rule_id(&id)?)?;
        let old = new.conflicts_with.clone().ok_or_else(|| {
            PageError::Bad(format!(
                "{} contradicts no rule; approve it instead",
                new.id
            ))
        })?;
        let old = store.get(&old)?;
        if old.status == crate::store::Status::Active {
            let why = Some(format!("replaced by {}", new.id));
            decide(&curator, &old.id, &Decision::Retire(why))?;
        }
        decide(&curator, &new.id, &Decision::Approve)?;
        tracing::info!("page: {} replaced {}", new.id, old.id);
        Ok(
            Redirect::to(&format!("/?done=replaced&id={}&other={}", new.id, old.id))
                .into_response(),
        )
    })
    .await
}

/// The change the form asks for: only the fields that differ from what the page showed (a
/// field shown with a secret redacted and sent back unchanged keeps the stored text).
fn edit_of(app: &App, form: &EditForm, r: &StoredRule, keys: Vec<String>) -> RuleEdit {
    let changed = |given: &str, stored: &str| {
        let given = given.trim();
        (given != app.clean(stored).trim()).then(|| given.to_string())
    };
    RuleEdit {
        category: changed(&form.category, r.rule.category.as_deref().unwrap_or("")),
        rule: changed(&form.rule, &r.rule.rule),
        when: changed(&form.when, &r.rule.when),
        why: changed(&form.why, &r.rule.why),
        targets: (!keys.is_empty() && keys != r.targets).then_some(keys),
    }
}

/// `POST /rules/{id}/edit`.
pub(super) async fn edit(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let r = store.get(rule_id(&id)?)?;
        let empty: Vec<&str> = [
            ("rule", &form.rule),
            ("when", &form.when),
            ("why", &form.why),
        ]
        .iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(name, _)| *name)
        .collect();
        if !empty.is_empty() {
            let problem = format!(
                "A rule needs all three of Rule, When and Why (empty: {}).",
                empty.join(", ")
            );
            return edit_page(app, &*store, &r, &form, Some(problem));
        }
        let curator = curator(app, &*store);
        let edit = edit_of(app, &form, &r, form.target_keys(&curator));
        if edit.category.is_none()
            && edit.rule.is_none()
            && edit.when.is_none()
            && edit.why.is_none()
            && edit.targets.is_none()
        {
            return Ok(
                Redirect::to(&format!("/rules/{}?done=unchanged&id={}", r.id, r.id))
                    .into_response(),
            );
        }
        match curator.edit(&r.id, &edit) {
            Ok((change, _)) => {
                tracing::info!("page: edited {}", change.rule_id);
                Ok(Redirect::to(&format!(
                    "/rules/{}?done=edited&id={}",
                    change.rule_id, change.rule_id
                ))
                .into_response())
            }
            Err(crate::learn::curate::CurateError::Store(e)) => {
                let f = store_failure(e);
                edit_page(app, &*store, &r, &form, Some(f.message))
            }
            Err(e) => Err(PageError::Internal(format!("{e:#}"))),
        }
    })
    .await
}

/// `POST /rules/{id}/preview`: the edit page again, with the sections as the form would
/// render them (nothing is changed).
pub(super) async fn preview(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    respond(app, move |app| {
        let store = app.store()?;
        let r = store.get(rule_id(&id)?)?;
        edit_page(app, &*store, &r, &form, None)
    })
    .await
}

/// A file inside the project as a path relative to it; others as they are.
fn relative(app: &App, file: &str) -> String {
    std::path::Path::new(file)
        .strip_prefix(&app.project_dir)
        .map_or_else(|_| file.to_string(), |p| p.display().to_string())
}

/// What the learner reported, for the result page.
fn outcome_of(app: &App, events: &[Event]) -> (Vec<Value>, Vec<Value>) {
    let mut learned = Vec::new();
    let mut pending = Vec::new();
    for event in events {
        match event {
            Event::RuleLearned {
                failure_id,
                rule,
                files,
                rule_id,
                action,
                note,
                ..
            } => learned.push(json!({
                "failure_id": failure_id,
                "rule_id": rule_id,
                "action": action,
                "note": app.clean_opt(note.as_deref()),
                "files": files.iter().map(|f| app.clean(&relative(app, f))).collect::<Vec<_>>(),
                "category": app.clean_opt(rule.category.as_deref()),
                "rule": app.clean(&rule.rule),
                "when": app.clean(&rule.when),
                "why": app.clean(&rule.why),
            })),
            Event::FailurePending { failure_id, reason } => pending.push(json!({
                "failure_id": failure_id,
                "reason": app.clean(reason),
            })),
            _ => {}
        }
    }
    (learned, pending)
}

/// The result page of a report or of learning.
fn learned_page(
    app: &App,
    title: &str,
    events: &[Event],
    problem: Option<String>,
) -> Result<Response, PageError> {
    let store = app.store()?;
    let (learned, pending) = outcome_of(app, events);
    Ok(app
        .page(
            &*store,
            "learned.html",
            "failures",
            title,
            json!({
                "learned": learned,
                "pending": pending,
                "problem": problem,
                "teacher": app.loaded.settings.teacher.mode.as_str(),
            }),
        )?
        .into_response())
}

fn failed(e: impl std::fmt::Display) -> PageError {
    PageError::Internal(e.to_string())
}

/// `POST /failures/learn`: every pending failure is analysed again, as `promptloop learn`
/// does, and the rules are written.
pub(super) async fn learn(State(app): State<Arc<App>>) -> Response {
    respond(app, move |app| {
        let settings = &app.loaded.settings;
        let record =
            Record::open_with(&app.project_dir, &app.loaded.settings.store).map_err(failed)?;
        let pending: Vec<_> = record
            .failures()
            .map_err(failed)?
            .into_iter()
            .filter(|f| f.status == FailureStatus::Pending)
            .collect();
        let title = "Learn the pending failures";
        if pending.is_empty() {
            return learned_page(app, title, &[], Some("No failure is pending.".into()));
        }
        let teacher = match teachers::make_teacher(settings).map_err(PageError::from)? {
            Ok(t) => t,
            Err(why) => return learned_page(app, title, &[], Some(why)),
        };
        let agent = agents::make_agent(settings);
        let default_rules = agents::rules_targets(settings, &app.project_dir, agent.as_ref());
        let mut learner = app
            .teaching
            .learner(Ok(teacher.as_ref()), default_rules.clone());
        let mut events = Vec::new();
        let mut emit = |e: Event| {
            crate::cli::log::log_event(&e);
            events.push(e);
        };
        let done = crate::cli::learn_pending(
            &mut learner,
            &record,
            pending,
            &default_rules,
            false,
            &mut emit,
            &CancelToken::new(),
        );
        match done {
            Ok(_) => learned_page(app, title, &events, None),
            Err(f) => learned_page(app, title, &events, Some(f.message)),
        }
    })
    .await
}

/// `POST /report`: a failure the tests did not catch, learned like `promptloop
/// report-failure` learns it; the page shows the rule when the teacher answers.
pub(super) async fn report(State(app): State<Arc<App>>, Form(form): Form<ReportForm>) -> Response {
    respond(app, move |app| {
        let again = |problem: String| -> Result<Response, PageError> {
            let store = app.store()?;
            report_page(app, &*store, &form, Some(problem))
        };
        let kind = match report::failure_type(&form.failure_type) {
            Ok(kind) => kind,
            Err(f) => return again(f.message),
        };
        if form.description.trim().is_empty() {
            return again("Say what went wrong: the description is empty.".into());
        }
        let settings = &app.loaded.settings;
        let teacher = match teachers::make_teacher(settings) {
            Ok(t) => t,
            Err(f) => return again(f.message),
        };
        let agent = agents::make_agent(settings);
        let rules = agents::rules_targets(settings, &app.project_dir, agent.as_ref());
        let record =
            Record::open_with(&app.project_dir, &app.loaded.settings.store).map_err(failed)?;
        let context = Some(form.context.trim().to_string()).filter(|c| !c.is_empty());
        let task = Some(form.task.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "(not stated)".to_string());
        let failure = report::manual_failure(
            kind,
            form.description.trim().to_string(),
            context,
            task,
            &app.project_dir,
        );
        let id = failure.id.clone();
        let learner = app
            .teaching
            .learner(teacher.as_deref().map_err(Clone::clone), rules);
        let mut events = Vec::new();
        let mut emit = |e: Event| {
            crate::cli::log::log_event(&e);
            events.push(e);
        };
        let cancel = CancelToken::new();
        let lesson = learner
            .analyse(failure, 0, &record, &mut emit, &cancel)
            .map_err(|e| failed(format!("{e:#}")))?;
        if let Lesson::Learned(boxed) = lesson {
            let (learned, stored) = *boxed;
            learner
                .write(&learned, stored, &record, &mut emit)
                .map_err(|e| failed(format!("{e:#}")))?;
        }
        tracing::info!("page: reported {id}");
        learned_page(app, &format!("Reported {id}"), &events, None)
    })
    .await
}
