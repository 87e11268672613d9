//! What every page shares: the embedded templates and assets, the layout's context, the
//! redaction of every text shown, and the errors a page can end in.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::App;
use crate::cli::Failure;
use crate::store::{FailureStatus, RuleFilter, RuleStore, Status, StoreError};

/// The templates, embedded in the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("inbox.html", include_str!("templates/inbox.html")),
    ("rules.html", include_str!("templates/rules.html")),
    ("rule.html", include_str!("templates/rule.html")),
    ("edit.html", include_str!("templates/edit.html")),
    ("failures.html", include_str!("templates/failures.html")),
    ("failure.html", include_str!("templates/failure.html")),
    ("report.html", include_str!("templates/report.html")),
    ("learned.html", include_str!("templates/learned.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("charts.html", include_str!("templates/charts.html")),
];

/// The assets, embedded in the binary: (name, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
];

/// The template environment (HTML auto-escaping on, as for every `.html` name).
pub(super) fn templates() -> Result<minijinja::Environment<'static>, Failure> {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| Failure::usage(format!("load the page template {name}: {e:#}")))?;
    }
    Ok(env)
}

/// `GET /assets/NAME`.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => ([(header::CONTENT_TYPE, *kind)], *body).into_response(),
        None => PageError::NotFound(format!("no asset {name}")).into_response(),
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub(super) enum PageError {
    /// No such rule, failure or run.
    NotFound(String),
    /// The request does not make sense (a reject of an active rule, an empty description).
    Bad(String),
    /// Something failed on the server (the store, a file, a teacher).
    Internal(String),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => PageError::NotFound(e.to_string()),
            StoreError::Ambiguous(..) | StoreError::Invalid(_) => PageError::Bad(e.to_string()),
            other => PageError::Internal(format!("{other:#}")),
        }
    }
}

impl From<Failure> for PageError {
    fn from(f: Failure) -> Self {
        if f.code == crate::cli::EXIT_USAGE {
            PageError::Bad(f.message)
        } else {
            PageError::Internal(f.message)
        }
    }
}

impl From<minijinja::Error> for PageError {
    fn from(e: minijinja::Error) -> Self {
        PageError::Internal(format!("render the page: {e:#}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            PageError::Bad(m) => (StatusCode::BAD_REQUEST, m),
            PageError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        tracing::warn!("page error {}: {message}", status.as_u16());
        // Plain and self-contained: an error page must not depend on what just failed.
        let message = crate::redact::Redactor::get().redact(&message).text;
        let body = format!(
            "<!doctype html><meta charset=utf-8><link rel=stylesheet href=/assets/style.css>\
             <title>{code}</title><main class=page><h1>{code}</h1><p class=error>{}</p>\
             <p><a href=/>Back to the inbox</a></p></main>",
            escape(&message),
            code = status.as_u16()
        );
        (status, Html(body)).into_response()
    }
}

/// HTML-escapes text for the few pages built without a template (and the SVG charts).
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Runs `work` (which opens the store, reads files, may ask a teacher) on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PageError::Internal(format!("the request's work stopped: {e}")))?
}

impl App {
    /// `text` with its secrets replaced by markers: every text a page shows passes here.
    pub(super) fn clean(&self, text: &str) -> String {
        self.redactor.redact(text).text
    }

    /// [`App::clean`] for an optional text.
    pub(super) fn clean_opt(&self, text: Option<&str>) -> Option<String> {
        text.map(|t| self.clean(t))
    }

    /// The project's store (its SQLite file, or the team store), opened for one request.
    pub(super) fn store(&self) -> Result<Box<dyn RuleStore>, PageError> {
        Ok(crate::store::open_for(
            &self.project_dir,
            &self.loaded.settings.store,
        )?)
    }

    /// Renders `template` inside the layout, with the navigation's counts.
    pub(super) fn page(
        &self,
        store: &dyn RuleStore,
        template: &str,
        active: &str,
        title: &str,
        data: Value,
    ) -> Result<Html<String>, PageError> {
        let proposed = store
            .list(&RuleFilter {
                statuses: vec![Status::Proposed],
                target: None,
            })?
            .len();
        let pending = store
            .failures()?
            .iter()
            .filter(|f| f.status == FailureStatus::Pending)
            .count();
        let context = json!({
            "title": title,
            "active": active,
            "csrf": self.guard.csrf(),
            "csrf_field": super::guard::CSRF_FIELD,
            "project": self.clean(&self.project_dir.display().to_string()),
            "inbox_count": proposed,
            "pending_count": pending,
            "version": env!("CARGO_PKG_VERSION"),
            "data": data,
        });
        let html = self
            .templates
            .get_template(template)?
            .render(minijinja::Value::from(minijinja::value::Serde(&context)))?;
        Ok(Html(html))
    }
}

/// A page's work, run on a blocking thread, as a response.
pub(super) async fn respond(
    app: Arc<App>,
    work: impl FnOnce(&App) -> Result<Response, PageError> + Send + 'static,
) -> Response {
    match blocking(move || work(&app)).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// A rule id from a path: `r-` and hex digits, or a prefix of them (nothing else reaches
/// the store).
pub(super) fn rule_id(id: &str) -> Result<&str, PageError> {
    let ok = !id.is_empty()
        && id.len() <= 40
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'r');
    if ok {
        Ok(id)
    } else {
        Err(PageError::NotFound(format!("no rule {id}")))
    }
}

/// A run or failure id from a path: letters, digits, `-`, `_`, `.` (never a path).
pub(super) fn record_id(id: &str) -> Result<&str, PageError> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(id)
    } else {
        Err(PageError::NotFound(format!("no such record {id}")))
    }
}

/// A short form of `text`: at most `max` characters, with an ellipsis when cut.
pub(super) fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = templates().unwrap();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn ids_from_a_path_never_name_a_file() {
        assert!(rule_id("r-7f3a2c").is_ok());
        assert!(rule_id("7f3a").is_ok());
        assert!(rule_id("../etc").is_err());
        assert!(record_id("20261124-215501-3fa2").is_ok());
        assert!(record_id("..").is_err());
        assert!(record_id("a/b").is_err());
        assert!(record_id(".hidden").is_err());
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
