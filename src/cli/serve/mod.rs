//! `promptloop serve`: the project's rules, failures and runs on a page served from the
//! binary itself (templates, styles and the one small script are embedded). Review proposed
//! rules, read where each rule came from, report a failure, learn the pending ones, follow a
//! run as it happens, and see whether the agent gets better, in charts drawn on the server.
//!
//! Every change goes through the same code as the command line (`learn::curate::Curator`,
//! `learn::Learner`), so the store's transactions and the rules files' lock keep edits from
//! the page and from `promptloop rules …` in another terminal from losing each other's work.
//! Each request opens the store on a blocking thread: nothing is shared between requests but
//! the settings.

mod actions;
mod charts;
mod guard;
mod live;
mod pages;
mod view;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use clap::Args;

use super::teachers::{self, Teaching};
use super::{EXIT_FAILED, Failure, finish, load_settings, project_dir};
use crate::redact::Redactor;
use crate::settings::{Loaded, Overrides};

/// The port when `--port` is not given.
const DEFAULT_PORT: u16 = 8765;

/// The environment variable that fixes the token (like `--token`).
const TOKEN_ENV: &str = "PROMPTLOOP_TOKEN";

const AFTER_HELP: &str = "\
The server listens on 127.0.0.1 and prints its address with an access token, like
Jupyter: open it, and the page keeps the token in a cookie. Scripts can send the header
`Authorization: Bearer TOKEN`; the --token flag or PROMPTLOOP_TOKEN fixes the token.

Examples:
  promptloop serve                       # http://127.0.0.1:8765/?token=…
  promptloop serve -d ../my-project --port 0 --open
  PROMPTLOOP_TOKEN=$(cat ~/.pl-token) promptloop serve --bind 192.168.1.20 --port 8080

Binding to an address other than loopback needs --bind and a token you chose (with the
--token flag or PROMPTLOOP_TOKEN), and prints a warning. docs/serve.md describes the views.";

/// `promptloop serve`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct ServeArgs {
    /// The project.
    #[arg(short = 'd', long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// The config file (default: ./promptloop.yaml, then ~/.config/promptloop/config.yaml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The teacher for reports and pending failures: auto, anthropic (alias local), openai,
    /// webhook, claude-cli, offline (overrides teacher.mode).
    #[arg(short, long, value_name = "MODE")]
    teacher: Option<String>,
    /// The port (0: any free port).
    #[arg(short, long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// The address to listen on (default 127.0.0.1). Another than loopback needs --token.
    #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
    bind: Option<IpAddr>,
    /// The access token (default: a random one; or PROMPTLOOP_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Open the page in the browser.
    #[arg(long)]
    open: bool,
}

fn parse_bind(s: &str) -> Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0)"))
}

/// What every request may use: the project, its settings, the access rules, the templates.
struct App {
    /// The project (absolute).
    project_dir: PathBuf,
    /// Its settings, with the command's flags applied.
    loaded: Loaded,
    /// Prompts, redactor and curation for the learner.
    teaching: Teaching,
    /// Every text shown passes it.
    redactor: Redactor,
    /// File-name patterns whose diffs are never shown.
    private_files: Vec<String>,
    /// Token, CSRF token, hosts.
    guard: guard::Guard,
    /// The pages.
    templates: minijinja::Environment<'static>,
    /// Turns true when the server stops (live views end).
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// Runs `promptloop serve`.
pub(super) fn serve(args: ServeArgs) -> ExitCode {
    finish(serve_inner(args))
}

fn serve_inner(args: ServeArgs) -> Result<u8, Failure> {
    let chosen_token = args.token.clone().or_else(|| {
        std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
    });
    let ip = args.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let warning = guard::check_bind(ip, args.bind.is_some(), chosen_token.is_some())?;
    let token = match chosen_token {
        Some(t) => {
            guard::check_token(&t)?;
            t
        }
        None => guard::random_token()?,
    };
    let project_dir = project_dir(&args.project_dir)?;
    let mut loaded = load_settings(args.config.as_deref())?;
    loaded.settings.apply(&Overrides {
        teacher_mode: args.teacher.clone(),
        ..Overrides::default()
    })?;
    let teaching = Teaching::new(&loaded)?;
    let redactor = teachers::redactor(&loaded.settings)?;
    super::start_log(&loaded.settings, &project_dir, "serve")?;
    if let Ok(repo) = crate::git::Repo::open(&project_dir) {
        repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME))
            .map_err(|e| Failure::usage(e.to_string()))?;
    }
    // A store that cannot be opened is reported now, not on the first page.
    crate::store::open_for(&project_dir, &loaded.settings.store).map_err(|e| Failure {
        message: format!("{e:#}"),
        code: EXIT_FAILED,
    })?;
    match teachers::make_teacher(&loaded.settings) {
        Ok(Ok(_)) => {}
        Ok(Err(why)) => eprintln!("note: failures reported on the page will stay pending: {why}"),
        Err(f) => eprintln!(
            "warning: reporting and learning on the page will fail: {}",
            f.message
        ),
    }
    let templates = view::templates()?;
    let private_files = teachers::private_files(&loaded.settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure {
            message: format!("start the server's runtime: {e}"),
            code: EXIT_FAILED,
        })?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(ip, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Failure {
                message: format!(
                    "listen on {addr}: {e}{}",
                    if e.kind() == std::io::ErrorKind::AddrInUse {
                        " (another server has the port; pass --port N, or --port 0 for any free one)"
                    } else {
                        ""
                    }
                ),
                code: EXIT_FAILED,
            })?;
        let bound = listener.local_addr().map_err(|e| Failure {
            message: format!("read the server's address: {e}"),
            code: EXIT_FAILED,
        })?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let app = Arc::new(App {
            project_dir: project_dir.clone(),
            loaded,
            teaching,
            redactor,
            private_files,
            guard: guard::Guard::new(token.clone(), guard::random_token()?, bound),
            templates,
            stopping,
        });
        let url = page_url(bound, &token);
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "promptloop serve: {}", project_dir.display());
            let _ = writeln!(out, "    {url}");
            let _ = writeln!(
                out,
                "Open the address above (it carries the access token). Ctrl-C stops the server."
            );
            let _ = out.flush();
        }
        if let Some(warning) = &warning {
            eprintln!("warning: {warning}");
        }
        tracing::info!("serving {} on {bound}", project_dir.display());
        if args.open {
            open_browser(&url);
        }
        axum::serve(listener, routes(app))
            .with_graceful_shutdown(async move {
                let _ = tokio::signal::ctrl_c().await;
                let _ = stop.send(true);
            })
            .await
            .map_err(|e| Failure {
                message: format!("serve on {bound}: {e}"),
                code: EXIT_FAILED,
            })?;
        Ok(0)
    })
}

/// The address to open: the bound one (loopback when bound to every interface) with the
/// token.
fn page_url(bound: SocketAddr, token: &str) -> String {
    let host = match bound.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    format!("http://{host}:{}/?token={token}", bound.port())
}

/// `--open`: the desktop's browser, if there is one; the address is printed either way.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = started {
        eprintln!("note: could not open a browser ({opener}: {e}); open the address yourself");
    }
}

/// Every page and action, behind the guard.
fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::inbox))
        .route("/rules", get(pages::rules))
        .route("/rules/{id}", get(pages::rule))
        .route("/rules/{id}/edit", get(pages::edit).post(actions::edit))
        .route("/rules/{id}/preview", post(actions::preview))
        .route("/rules/{id}/approve", post(actions::approve))
        .route("/rules/{id}/reject", post(actions::reject))
        .route("/rules/{id}/retire", post(actions::retire))
        .route("/rules/{id}/replace", post(actions::replace))
        .route("/failures", get(pages::failures))
        .route("/failures/learn", post(actions::learn))
        .route("/failures/{id}", get(pages::failure))
        .route("/report", get(pages::report).post(actions::report))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/events", get(live::events))
        .route("/charts", get(pages::charts))
        .route("/assets/{name}", get(view::asset))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            guard::check,
        ))
        .with_state(app)
}
