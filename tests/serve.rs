//! `promptloop serve` over HTTP: the real binary on a loopback port, spoken to with hand-made
//! requests (so the `Host` header, cookies and missing fields are exactly what a test says):
//! the token, the Host check, CSRF, `--bind` elsewhere, redaction, the live view's
//! server-sent events, and edits from the page and the CLI at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::Project;

/// The token the tests give the server.
pub const TOKEN: &str = "test-token-0123456789";

/// A running `promptloop serve`, stopped when dropped.
pub struct Server {
    child: Child,
    /// The port it listens on (it was started with `--port 0`).
    pub port: u16,
    /// The address it printed, token included.
    pub url: String,
    /// What it wrote to stderr so far is in this file.
    stderr: std::path::PathBuf,
}

impl Server {
    /// Starts `promptloop serve -d PROJECT --port 0 --token TOKEN ARGS…` with the project's
    /// clean environment and `envs`, and waits for the address it prints.
    pub fn start(project: &Project, args: &[&str], envs: &[(&str, String)]) -> Server {
        let stderr = project.home.path().join(format!(
            "serve-{}.err",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptloop"));
        cmd.current_dir(&project.path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", project.home.path())
            .env("TMPDIR", project.home.path())
            .env("XDG_CONFIG_HOME", project.home.path().join(".config"))
            .env("XDG_DATA_HOME", project.home.path().join(".local/share"))
            .env("LANG", "C.UTF-8")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["serve", "-d"])
            .arg(&project.path)
            .args(["--port", "0", "--token", TOKEN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (name, value) in envs {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().expect("start promptloop serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim_start().starts_with("http://") {
                    let _ = tx.send(line.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "serve printed no address; stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        };
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        Server {
            child,
            port,
            url,
            stderr,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// GET with the token in the header.
    pub fn get(&self, path: &str) -> Reply {
        http(
            self.port,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
        )
    }

    /// POST a form with the token in the header (and whatever `form` holds).
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        http(
            self.port,
            "POST",
            path,
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(&body),
        )
    }

    /// The CSRF token the pages carry.
    pub fn csrf(&self) -> String {
        let page = self.get("/");
        assert_eq!(
            page.status,
            200,
            "{}\nthe server's stderr:\n{}",
            page.body,
            self.stderr()
        );
        let at = page
            .body
            .find("<meta name=\"csrf-token\" content=\"")
            .expect("the page's CSRF token")
            + "<meta name=\"csrf-token\" content=\"".len();
        page.body[at..at + 32].to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding for a form value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`, `Host: 127.0.0.1:PORT` unless `headers` name
/// another, the connection closed after it.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Text as a page's HTML escaped it, read back.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Writes rules as the markdown `rules import` reads.
pub fn rules_markdown(rules: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    for (rule, when, why) in rules {
        out.push_str(&format!(
            "- **Rule**: {rule}\n- **When**: {when}\n- **Why**: {why}\n\n"
        ));
    }
    out
}

/// Imports `rules` into the project's store as proposed (review); returns their ids in order.
pub fn propose(project: &Project, rules: &[(&str, &str, &str)]) -> Vec<String> {
    let file = project.home.path().join("proposed.md");
    std::fs::write(&file, rules_markdown(rules)).unwrap();
    project
        .promptloop()
        .args(["rules", "import", "--review"])
        .arg(&file)
        .assert()
        .success();
    let listed = project
        .promptloop()
        .args(["rules", "list", "--status", "proposed", "--json"])
        .output()
        .unwrap();
    let all: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    rules
        .iter()
        .map(|(text, _, _)| {
            all.iter()
                .find(|r| r["rule"] == *text)
                .unwrap_or_else(|| panic!("{text} not proposed: {all:?}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// A rule by id, from `rules show --json`.
pub fn rule(project: &Project, id: &str) -> Value {
    let out = project
        .promptloop()
        .args(["rules", "show", id, "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Saves a failure straight into the project's store (as a run or a report would).
pub fn save_failure(project: &Path, failure: Value) {
    use promptloop::store::RuleStore;
    let stored: promptloop::store::StoredFailure = serde_json::from_value(failure).unwrap();
    promptloop::store::open_project(project)
        .unwrap()
        .save_failure(&stored)
        .unwrap();
}

/// A pending manual failure with `description`.
pub fn manual_failure(id: &str, project: &Path, description: &str) -> Value {
    json!({
        "status": "pending",
        "context": {
            "id": id, "failure_type": "integration_error", "source": "manual",
            "task": "Wire the billing export", "project_dir": project.display().to_string(),
            "run_id": null, "attempt": null, "captured_at": "2026-11-24T21:40:00+01:00",
            "test_command": null, "tests": [], "failing_ids": [], "test_summary": "",
            "diff": "", "agent_status": null, "agent_message": null,
            "description": description,
            "context": "It should have extended billing/export.py."
        },
        "last_error": "no teacher available", "tries": 1, "rule": null,
        "rules_file": null, "teacher": null, "teacher_answer": null
    })
}

pub const RULE_A: (&str, &str, &str) = (
    "Call `load_config()` before reading `settings.timeout`",
    "Reading settings in a command",
    "the test read a default of 0",
);

#[test]
fn every_request_needs_the_token_from_a_header_or_the_cookie_the_url_sets() {
    let p = Project::new();
    let server = Server::start(&p, &[], &[]);
    assert!(
        server.url.ends_with(&format!("/?token={TOKEN}")),
        "{}",
        server.url
    );
    for path in [
        "/",
        "/rules",
        "/charts",
        "/assets/style.css",
        "/runs/x/events",
    ] {
        let bare = http(server.port, "GET", path, &[], None);
        assert_eq!(bare.status, 401, "{path}: {}", bare.body);
        assert!(bare.header("www-authenticate").is_some());
        assert!(!bare.body.contains(TOKEN));
    }
    let wrong = http(
        server.port,
        "GET",
        "/",
        &[("Authorization", "Bearer test-token-0123456788")],
        None,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(
        http(server.port, "GET", "/?token=guess-guess", &[], None).status,
        401
    );
    let ok = server.get("/");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("<h1>Inbox</h1>"));
    assert!(!ok.body.contains(TOKEN), "a page must not show the token");
    assert_eq!(ok.header("x-frame-options"), Some("DENY"));
    assert_eq!(ok.header("referrer-policy"), Some("no-referrer"));
    assert!(
        ok.header("content-security-policy")
            .is_some_and(|c| c.contains("frame-ancestors 'none'"))
    );

    // The URL's token sets a cookie for this port and leaves the address bar.
    let opened = http(
        server.port,
        "GET",
        &format!("/rules?status=active&token={TOKEN}"),
        &[],
        None,
    );
    assert_eq!(opened.status, 303);
    assert_eq!(opened.header("location"), Some("/rules?status=active"));
    let cookie = opened.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.starts_with(&format!("promptloop_token_{}={TOKEN};", server.port)),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    let with_cookie = http(server.port, "GET", "/rules", &[("Cookie", pair)], None);
    assert_eq!(with_cookie.status, 200, "{}", with_cookie.body);
    let other_port = format!("promptloop_token_{}={TOKEN}", server.port + 1);
    assert_eq!(
        http(server.port, "GET", "/", &[("Cookie", &other_port)], None).status,
        401
    );
}

#[test]
fn a_host_other_than_the_servers_own_is_refused_so_no_name_can_be_rebound_to_it() {
    let p = Project::new();
    let server = Server::start(&p, &[], &[]);
    let bearer = format!("Bearer {TOKEN}");
    let with_host = |host: &str| {
        http(
            server.port,
            "GET",
            "/",
            &[("Host", host), ("Authorization", &bearer)],
            None,
        )
    };
    for bad in [
        format!("evil.example:{}", server.port),
        format!("localhost.evil.example:{}", server.port),
        format!("localhost:{}", server.port + 1),
        "localhost".to_string(),
        format!("10.1.2.3:{}", server.port),
    ] {
        let reply = with_host(&bad);
        assert_eq!(reply.status, 403, "Host {bad}: {}", reply.body);
    }
    // Even the token in the URL does not get past a wrong Host.
    let rebound = http(
        server.port,
        "GET",
        &format!("/?token={TOKEN}"),
        &[("Host", &format!("evil.example:{}", server.port))],
        None,
    );
    assert_eq!(rebound.status, 403);
    assert!(rebound.header("set-cookie").is_none());
    for good in [
        format!("localhost:{}", server.port),
        format!("127.0.0.1:{}", server.port),
    ] {
        assert_eq!(with_host(&good).status, 200, "Host {good}");
    }
}

#[test]
fn a_state_change_without_the_csrf_token_is_refused_and_changes_nothing() {
    let p = Project::new();
    let ids = propose(&p, &[RULE_A]);
    let server = Server::start(&p, &[], &[]);
    let approve = format!("/rules/{}/approve", ids[0]);
    let none = server.post(&approve, &[("back", "inbox")]);
    assert_eq!(none.status, 403, "{}", none.body);
    let wrong = server.post(&approve, &[("csrf", "00000000000000000000000000000000")]);
    assert_eq!(wrong.status, 403);
    assert_eq!(rule(&p, &ids[0])["status"], "proposed");
    assert!(!p.read("CLAUDE.md").contains("load_config"));

    let csrf = server.csrf();
    let done = server.post(&approve, &[("csrf", &csrf), ("back", "inbox")]);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("/?done=approved&id={}", ids[0]).as_str())
    );
    assert_eq!(rule(&p, &ids[0])["status"], "active");
    let file = p.read("CLAUDE.md");
    assert!(file.contains("## Learned Rules & Patterns"), "{file}");
    assert!(file.contains(RULE_A.0), "{file}");
    assert!(file.contains(&ids[0]), "{file}");

    // The header form works for scripts; a GET never changes anything.
    let retire = http(
        server.port,
        "POST",
        &format!("/rules/{}/retire", ids[0]),
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("X-CSRF-Token", &csrf),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some("reason=done+with+it"),
    );
    assert_eq!(retire.status, 303, "{}", retire.body);
    assert_eq!(rule(&p, &ids[0])["status"], "retired");
    assert!(!p.read("CLAUDE.md").contains("load_config"));
    assert_eq!(
        server.get(&format!("/rules/{}/approve", ids[0])).status,
        405
    );
    assert_eq!(rule(&p, &ids[0])["status"], "retired");
}

#[test]
fn bind_to_another_address_without_a_chosen_token_is_refused() {
    let p = Project::new();
    for addr in ["0.0.0.0", "192.0.2.10", "::"] {
        let out = p
            .promptloop()
            .args(["serve", "--bind", addr, "--port", "0"])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--bind {addr}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is not a loopback address") && err.contains("--token"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing was served");
    }
    let short = p
        .promptloop()
        .args(["serve", "--token", "short", "--port", "0"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(2));
    let bad = p
        .promptloop()
        .args(["serve", "--bind", "not-an-address"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn pages_show_failures_and_rules_with_their_secrets_redacted() {
    let p = Project::new();
    let secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    save_failure(
        &p.path,
        manual_failure(
            "20261124-214000-aaaa-integration_error",
            &p.path,
            &format!("The agent pasted the token {secret} into config.py"),
        ),
    );
    propose(
        &p,
        &[(
            &format!("Never write tokens like {secret} into source files"),
            "Configuring a client",
            "the token leaked into git",
        )],
    );
    let server = Server::start(&p, &[], &[]);
    for path in [
        "/",
        "/rules",
        "/failures",
        "/failures/20261124-214000-aaaa-integration_error",
    ] {
        let page = server.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(!page.body.contains(secret), "{path} shows the secret");
        assert!(page.body.contains("[REDACTED"), "{path}: {}", page.body);
    }
    let found = server.get("/rules?q=never+write+tokens");
    assert!(found.body.contains("[REDACTED"));
    assert!(found.body.contains("1 matching"), "{}", found.body);
}

#[test]
fn the_learn_button_learns_the_pending_failures_with_the_teacher() {
    let p = Project::new();
    save_failure(
        &p.path,
        manual_failure(
            "20261124-214000-bbbb-integration_error",
            &p.path,
            "Added a second CSV exporter instead of extending billing/export.py",
        ),
    );
    let server = Server::start(&p, &["--teacher", "offline"], &[]);
    let failures = server.get("/failures");
    assert!(
        failures.body.contains("Learn the 1 pending failure"),
        "{}",
        failures.body
    );
    let csrf = server.csrf();
    let learned = server.post("/failures/learn", &[("csrf", &csrf)]);
    assert_eq!(learned.status, 200, "{}", learned.body);
    assert!(learned.body.contains("card learned"), "{}", learned.body);
    let stored = crate::support::stored_failure(&p.path, "20261124-214000-bbbb-integration_error");
    assert_eq!(stored["status"], "learned");
    let rule_text = stored["rule"]["rule"].as_str().unwrap().to_string();
    assert!(!rule_text.is_empty());
    assert!(
        unescape(&learned.body).contains(&rule_text),
        "{}",
        learned.body
    );
    assert!(p.read("CLAUDE.md").contains(&rule_text));
    let again = server.post("/failures/learn", &[("csrf", &csrf)]);
    assert!(again.body.contains("No failure is pending."));
}

#[test]
fn the_edit_page_previews_the_section_and_saving_renders_it() {
    let p = Project::new();
    p.write("CLAUDE.md", "# Notes\n\nUse tabs.\n");
    let ids = propose(&p, &[RULE_A]);
    let server = Server::start(&p, &[], &[]);
    let edit = server.get(&format!("/rules/{}/edit", ids[0]));
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(
        edit.body.contains("## Learned Rules &amp; Patterns"),
        "{}",
        edit.body
    );
    assert!(edit.body.contains("once the rule is approved"));
    let csrf = server.csrf();
    let new_text = "Call `load_config()` first, before reading any `settings.*` value";
    let form = [
        ("csrf", csrf.as_str()),
        ("rule", new_text),
        ("when", RULE_A.1),
        ("why", RULE_A.2),
        ("category", "Configuration"),
        ("targets", "CLAUDE.md"),
    ];
    let preview = server.post(&format!("/rules/{}/preview", ids[0]), &form);
    assert_eq!(preview.status, 200, "{}", preview.body);
    let section = preview
        .body
        .split("<pre class=\"section\">")
        .nth(1)
        .unwrap();
    assert!(section.contains("### Configuration"), "{section}");
    assert!(section.contains("settings.*"), "{section}");
    assert_eq!(
        rule(&p, &ids[0])["rule"],
        RULE_A.0,
        "a preview changes nothing"
    );
    assert_eq!(p.read("CLAUDE.md"), "# Notes\n\nUse tabs.\n");

    let saved = server.post(&format!("/rules/{}/edit", ids[0]), &form);
    assert_eq!(saved.status, 303, "{}", saved.body);
    let stored = rule(&p, &ids[0]);
    assert_eq!(stored["rule"], new_text);
    assert_eq!(stored["category"], "Configuration");
    assert_eq!(stored["status"], "proposed", "an edit keeps the status");
    // Approving writes exactly what the preview showed, below the user's text.
    server.post(
        &format!("/rules/{}/approve", ids[0]),
        &[("csrf", &csrf), ("back", "rule")],
    );
    let file = p.read("CLAUDE.md");
    assert!(file.starts_with("# Notes\n\nUse tabs.\n"), "{file}");
    let preview_text = section.split("</pre>").next().unwrap();
    assert!(
        file.trim_end().ends_with(unescape(preview_text).trim_end()),
        "file:\n{file}\npreview:\n{}",
        unescape(preview_text)
    );

    let empty = server.post(
        &format!("/rules/{}/edit", ids[0]),
        &[("csrf", &csrf), ("rule", ""), ("when", "x"), ("why", "y")],
    );
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("needs all three"), "{}", empty.body);
}

#[test]
fn a_conflict_is_shown_side_by_side_and_keeping_the_new_rule_retires_the_old() {
    let p = Project::new();
    let old = (
        "Return None, not 0, from safe_divide when dividing by zero",
        "Writing safe_divide",
        "the caller checks for None",
    );
    let ids = propose(&p, &[old]);
    p.promptloop()
        .args(["rules", "approve", &ids[0]])
        .assert()
        .success();
    let file = p.home.path().join("new.md");
    std::fs::write(
        &file,
        rules_markdown(&[(
            "Return 0, not None, from safe_divide when dividing by zero",
            "Writing safe_divide",
            "the report sums the results",
        )]),
    )
    .unwrap();
    p.promptloop()
        .args(["rules", "import"])
        .arg(&file)
        .assert()
        .success();
    let listed: Vec<Value> = serde_json::from_slice(
        &p.promptloop()
            .args(["rules", "list", "--status", "proposed", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let new_id = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["conflicts_with"], ids[0].as_str());
    let server = Server::start(&p, &[], &[]);
    let inbox = server.get("/");
    let pair = inbox
        .body
        .split("class=\"pair\"")
        .nth(1)
        .expect("a conflict pair");
    assert!(pair.contains("Return 0, not None") && pair.contains("Return None, not 0"));
    let csrf = server.csrf();
    let kept = server.post(&format!("/rules/{new_id}/replace"), &[("csrf", &csrf)]);
    assert_eq!(kept.status, 303, "{}", kept.body);
    assert_eq!(rule(&p, &new_id)["status"], "active");
    assert_eq!(rule(&p, &ids[0])["status"], "retired");
    let file = p.read("CLAUDE.md");
    assert!(
        file.contains("Return 0, not None") && !file.contains("Return None, not 0"),
        "{file}"
    );
}

#[test]
fn a_run_in_progress_streams_its_events_as_they_are_written() {
    let p = Project::new();
    let dir = p.path.join(".promptloop/runs/20261124-215501-3fa2");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("events.jsonl");
    let started = json!({"type": "run.started", "run_id": "20261124-215501-3fa2",
        "task": "Fix safe_divide", "project_dir": p.path, "agent": "claude", "teacher": "offline",
        "rules_file": "CLAUDE.md", "rules_files": ["CLAUDE.md"], "max_attempts": 2,
        "base_ref": "refs/promptloop/runs/20261124-215501-3fa2/attempt-1/before"});
    std::fs::write(&log, format!("{started}\n")).unwrap();
    let server = Server::start(&p, &[], &[]);
    let page = server.get("/runs/20261124-215501-3fa2");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("run started: Fix safe_divide"));
    assert!(page.body.contains("data-src="), "{}", page.body);

    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        stream,
        "GET /runs/20261124-215501-3fa2/events?from=0 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
         Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n",
        server.port
    )
    .unwrap();
    let mut seen = String::new();
    let read_until = |stream: &mut TcpStream, seen: &mut String, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while !seen.contains(what) {
            assert!(Instant::now() < deadline, "no {what:?} in:\n{seen}");
            if let Ok(n) = stream.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    };
    read_until(&mut stream, &mut seen, "run started: Fix safe_divide");
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("event: run-event"));
    assert!(!seen.contains("tests failed"));
    // Lines written after the stream opened arrive on it, a half-written line only once
    // it is complete.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let tests = json!({"type": "tests.finished", "attempt": 1, "tests": {"outcome": "failed"},
        "failing": ["tests/test_calc.py::test_divide_by_zero"]});
    let line = format!("{tests}\n");
    let (head, tail) = line.split_at(20);
    file.write_all(head.as_bytes()).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    file.write_all(tail.as_bytes()).unwrap();
    read_until(&mut stream, &mut seen, "attempt 1: tests failed, 1 failing");
    let finished = json!({"type": "run.finished", "outcome": "passed", "attempts": 2,
        "rules_learned": 1, "pending": 0, "cost_usd": 0.0, "duration_ms": 1000});
    writeln!(file, "{finished}").unwrap();
    read_until(&mut stream, &mut seen, "event: end");
    assert!(seen.contains("run finished: passed after 2 attempt(s)"));
    assert_eq!(seen.matches("tests failed").count(), 1, "{seen}");

    // Resuming from an offset sends only what came after it.
    let resumed = server.get(&format!(
        "/runs/20261124-215501-3fa2/events?from={}",
        format!("{started}\n").len()
    ));
    assert!(!resumed.body.contains("run started"), "{}", resumed.body);
    assert!(resumed.body.contains("tests failed"));
    assert!(resumed.body.contains("event: end"));
    assert_eq!(server.get("/runs/..%2F..%2Fetc/events").status, 404);
}

#[test]
fn approvals_from_the_page_and_the_cli_at_once_lose_nothing() {
    let p = Project::new();
    p.write("CLAUDE.md", "# Mine\n\nKeep this line.\n");
    let names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    let texts: Vec<(String, String, String)> = names
        .iter()
        .map(|n| {
            (
                format!("Call `{n}_setup()` before `{n}_run()`"),
                format!("Using the {n} module"),
                format!("`{n}_run()` read an empty cache"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str, &str)> = texts
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    let ids = propose(&p, &refs);
    let server = Server::start(&p, &[], &[]);
    let csrf = server.csrf();
    let (page_ids, cli_ids) = ids.split_at(3);
    std::thread::scope(|s| {
        s.spawn(|| {
            for id in page_ids {
                let reply = server.post(&format!("/rules/{id}/approve"), &[("csrf", &csrf)]);
                assert_eq!(reply.status, 303, "{}", reply.body);
            }
        });
        s.spawn(|| {
            for id in cli_ids {
                p.promptloop()
                    .args(["rules", "approve", id])
                    .timeout(Duration::from_secs(60))
                    .assert()
                    .success();
            }
        });
    });
    let file = p.read("CLAUDE.md");
    assert!(file.starts_with("# Mine\n\nKeep this line.\n"), "{file}");
    for (id, (text, _, _)) in ids.iter().zip(&texts) {
        assert_eq!(rule(&p, id)["status"], "active", "{id}");
        assert!(file.contains(text.as_str()), "{text} missing:\n{file}");
    }
    assert_eq!(file.matches("- **Rule**:").count(), 6, "{file}");
    // The rendered file is what a render from the store gives: nothing torn.
    let again = p.promptloop().args(["rules", "render"]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"));
    assert_eq!(p.read("CLAUDE.md"), file);
}

#[test]
fn the_views_answer_and_unknown_things_are_not_found() {
    let p = Project::new();
    let server = Server::start(&p, &[], &[]);
    for path in ["/", "/rules", "/failures", "/report", "/runs", "/charts"] {
        let page = server.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains("<nav>"), "{path}");
    }
    let charts = server.get("/charts");
    assert!(charts.body.contains("No rule learned yet."));
    assert!(charts.body.contains("No bench results in the store."));
    assert_eq!(server.get("/rules/r-ffffff").status, 404);
    assert_eq!(server.get("/rules/..%2Fx").status, 404);
    assert_eq!(server.get("/failures/nope").status, 404);
    assert_eq!(server.get("/runs/nope").status, 404);
    assert_eq!(server.get("/nowhere").status, 404);
}
