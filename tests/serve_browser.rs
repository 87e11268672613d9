//! `promptloop serve` in a real headless browser: Debian's chromium driven through
//! chromedriver (WebDriver) by fantoccini. Approve a proposed rule and the instruction file
//! gets it; report a failure and its rule is stored and shown; the charts are non-empty
//! SVG; a run in progress updates live; and a screenshot of every view is saved under
//! `target/serve-screenshots/` (the test prints where).
//!
//! A missing browser fails these tests (CI installs `chromium chromium-driver`), unless
//! `PROMPTLOOP_TEST_ALLOW_NO_BROWSER=1` is set, when they say so and pass without running.
//! The browser is told to use a proxy on a closed loopback port, so nothing it might try on
//! its own leaves the machine; the page itself is on 127.0.0.1, which no proxy is used for.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::serve::{RULE_A, Server, manual_failure, propose, rule, rules_markdown, save_failure};
use crate::support::builders::Config;
use crate::support::fake_anthropic::{FakeAnthropic, Reply};
use crate::support::{Project, repo_root};

/// One browser at a time: each is a chromium, and the machine may have two cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// A program on PATH (or named by `env`).
fn program(names: &[&str], env: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (with a message) when they are missing and
/// `PROMPTLOOP_TEST_ALLOW_NO_BROWSER=1`; missing otherwise fails the test.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = program(
        &["chromium", "chromium-browser"],
        "PROMPTLOOP_TEST_CHROMIUM",
    );
    let driver = program(&["chromedriver"], "PROMPTLOOP_TEST_CHROMEDRIVER");
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        (c, d) => {
            let missing = [("chromium", c.is_none()), ("chromedriver", d.is_none())]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" and ");
            if std::env::var("PROMPTLOOP_TEST_ALLOW_NO_BROWSER").as_deref() == Ok("1") {
                eprintln!(
                    "SKIPPED: {missing} not found and PROMPTLOOP_TEST_ALLOW_NO_BROWSER=1: the \
                     browser test did not run"
                );
                None
            } else {
                panic!(
                    "{missing} not found: install them (`apt-get install -y chromium \
                     chromium-driver`), or set PROMPTLOOP_TEST_ALLOW_NO_BROWSER=1 to skip the \
                     browser tests"
                );
            }
        }
    }
}

/// Where screenshots go: `target/serve-screenshots/`.
fn shots_dir() -> PathBuf {
    let dir = repo_root().join("target/serve-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless chromium behind chromedriver, and a WebDriver session with it.
struct Browser {
    client: Option<Client>,
    driver: Child,
    runtime: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Browser {
    fn start() -> Option<Browser> {
        let (chromium, chromedriver) = browser_programs()?;
        let one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let profile = tempfile::tempdir().unwrap();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--no-pings",
                    "--disable-features=Translate,OptimizationHints,MediaRouter",
                    "--proxy-server=http://127.0.0.1:9",
                ],
            }),
        );
        let client = runtime
            .block_on(async {
                ClientBuilder::rustls()
                    .expect("tls")
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
            })
            .expect("a WebDriver session with chromium");
        Some(Browser {
            client: Some(client),
            driver,
            runtime,
            _profile: profile,
            _one: one,
        })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Waits (up to 30 s) for an element matching `css`.
    fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.runtime
            .block_on(
                self.client()
                    .wait()
                    .at_most(Duration::from_secs(30))
                    .for_element(Locator::Css(css)),
            )
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}\n{}", self.source()))
    }

    fn click(&self, css: &str) {
        let element = self.wait(css);
        self.runtime
            .block_on(element.click())
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    fn fill(&self, css: &str, text: &str) {
        let element = self.wait(css);
        self.runtime
            .block_on(element.send_keys(text))
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    fn text(&self, css: &str) -> String {
        let element = self.wait(css);
        self.runtime.block_on(element.text()).unwrap()
    }

    fn count(&self, css: &str) -> usize {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .map_or(0, |v| v.len())
    }

    fn source(&self) -> String {
        self.runtime
            .block_on(self.client().source())
            .unwrap_or_default()
    }

    fn run_js(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, Vec::new()))
            .unwrap_or_else(|e| panic!("run {script}: {e}"))
    }

    /// Waits until `script` returns true.
    fn wait_until(&self, script: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.run_js(script) != json!(true) {
            assert!(Instant::now() < deadline, "{what}:\n{}", self.source());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A screenshot of the whole page (the window grown to its height, within reason),
    /// saved as `NAME.png` under `target/serve-screenshots/`; returns the path.
    fn shot(&self, name: &str) -> PathBuf {
        let height = self
            .run_js("return document.documentElement.scrollHeight;")
            .as_u64()
            .unwrap_or(1000)
            .clamp(600, 2400) as u32;
        self.runtime
            .block_on(self.client().set_window_size(1280, height))
            .unwrap();
        let png = self.runtime.block_on(self.client().screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        assert!(png.len() > 10_000, "{name}: an empty picture");
        let path = shots_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        self.runtime
            .block_on(self.client().set_window_size(1280, 1000))
            .unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn approving_a_proposed_rule_on_the_page_writes_it_into_the_instruction_file() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let p = Project::new();
    p.write("CLAUDE.md", "# Project\n\nMy own notes.\n");
    let ids = propose(&p, &[RULE_A]);
    let server = Server::start(&p, &[], &[]);
    browser.goto(&server.url);
    assert_eq!(browser.text("h1"), "Inbox");
    assert!(
        browser
            .text(&format!("#rule-{}", ids[0]))
            .contains("load_config()")
    );
    browser.click(&format!(
        "#rule-{} form[action='/rules/{}/approve'] button",
        ids[0], ids[0]
    ));
    let done = browser.text("p.done");
    assert!(done.contains(&format!("Approved {}", ids[0])), "{done}");
    assert!(browser.text("main").contains("Nothing waits for review."));
    let file = p.read("CLAUDE.md");
    assert!(file.starts_with("# Project\n\nMy own notes.\n"), "{file}");
    assert!(file.contains("## Learned Rules & Patterns"), "{file}");
    assert!(file.contains(RULE_A.0), "{file}");
    assert_eq!(rule(&p, &ids[0])["status"], "active");
    println!("screenshot: {}", browser.shot("approved").display());
}

#[test]
fn the_report_form_stores_a_failure_and_shows_the_rule_the_teacher_answered() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let p = Project::new();
    let teacher = FakeAnthropic::start(|_| {
        Reply::text(
            "Analysis: the agent wrote a second exporter beside the one it should have \
             extended.\n\n### Integration\n\
             - **Rule**: Extend `billing/export.py` instead of adding a second CSV exporter\n\
             - **When**: Adding an export format to billing\n\
             - **Why**: Two exporters drifted apart and the report totals differed\n",
        )
    });
    let envs = [
        ("ANTHROPIC_BASE_URL", teacher.base_url()),
        ("ANTHROPIC_API_KEY", "test-anthropic-key".to_string()),
    ];
    let server = Server::start(&p, &["--teacher", "anthropic"], &envs);
    browser.goto(&server.url);
    browser.goto(&format!("{}/report", server.base()));
    assert_eq!(browser.text("h1"), "Report a failure");
    assert_eq!(browser.count("form.report input[type=radio]"), 7);
    browser.click("input[value=integration_error]");
    let secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    browser.fill(
        "textarea[name=description]",
        "Added csv_export.py instead of extending billing/export.py",
    );
    browser.fill(
        "textarea[name=context]",
        &format!("The exporter is in billing/export.py; the deploy token {secret} is not needed"),
    );
    browser.fill("input[name=task]", "Add a CSV export to billing");
    println!("screenshot: {}", browser.shot("report").display());
    browser.click("form.report button.primary");
    let card = browser.text(".card.learned");
    assert!(
        card.contains("Extend `billing/export.py` instead of adding a second CSV exporter"),
        "{card}"
    );
    println!("screenshot: {}", browser.shot("reported").display());

    let failures = crate::support::stored_failures(&p.path);
    assert_eq!(failures.len(), 1, "{failures:?}");
    let f = &failures[0];
    assert_eq!(f["status"], "learned");
    assert_eq!(f["context"]["failure_type"], "integration_error");
    assert_eq!(f["context"]["source"], "manual");
    assert_eq!(f["context"]["task"], "Add a CSV export to billing");
    assert_eq!(
        f["rule"]["rule"],
        "Extend `billing/export.py` instead of adding a second CSV exporter"
    );
    let listed: Vec<Value> = serde_json::from_slice(
        &p.promptloop()
            .args(["rules", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "active");
    assert!(p.read("CLAUDE.md").contains("Extend `billing/export.py`"));
    // The teacher got the prompt for the type and the report, redacted.
    let asked = teacher.messages_requests();
    assert_eq!(asked.len(), 1);
    let prompt = promptloop::teacher::prompt::builtin_system(
        promptloop::teacher::prompt::builtin_name_for("integration_error"),
    )
    .unwrap();
    assert!(prompt.contains("integration"), "{prompt}");
    let sent = asked[0].text();
    assert!(
        sent.contains(&prompt),
        "not the integration_error prompt:\n{sent}"
    );
    assert!(
        sent.contains("Added csv_export.py instead of extending"),
        "{sent}"
    );
    assert!(!sent.contains(secret), "the secret reached the teacher");
}

/// A project with history: a run that failed twice (the same failure came back), a run
/// that passed at once, rules learned, proposed and conflicting, and a pending failure.
fn seeded() -> Project {
    let p = Project::calculator();
    p.write(
        "CLAUDE.md",
        "# Calculator\n\nRun the tests with `python3 -m pytest tests -q`.\n",
    );
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "notes"]);
    // The agent fixes the average and leaves safe_divide's bug: the tests keep failing.
    let half_fix = Config::new()
        .command_agent(
            "sed -i 's|// len(numbers)|/ len(numbers)|' calculator.py",
            "CLAUDE.md",
        )
        .tests("python3 -m pytest tests -q")
        .offline()
        .retries(1)
        .write(&p);
    p.run(&["run", "Fix the calculator's bugs"], &half_fix)
        .go()
        .assert_code(1);
    let passing = Config::new()
        .command_agent(
            "sed -i 's|// len(numbers)|/ len(numbers)|' calculator.py",
            "CLAUDE.md",
        )
        .tests("python3 -m pytest tests -q -k average")
        .offline()
        .write(&p);
    p.run(&["run", "Fix average to keep the fraction"], &passing)
        .go()
        .assert_code(0);
    p.git(&["checkout", "--", "calculator.py"]);
    let active = p.home.path().join("active.md");
    std::fs::write(
        &active,
        rules_markdown(&[(
            "Return None, not 0, from safe_divide when dividing by zero",
            "Writing safe_* helpers",
            "0 looks like a valid result to the caller",
        )]),
    )
    .unwrap();
    p.promptloop()
        .args(["rules", "import"])
        .arg(&active)
        .assert()
        .success();
    let conflicting = p.home.path().join("conflicting.md");
    std::fs::write(
        &conflicting,
        rules_markdown(&[(
            "Return 0, not None, from safe_divide when dividing by zero",
            "Writing safe_* helpers",
            "the report sums the results and cannot add None",
        )]),
    )
    .unwrap();
    p.promptloop()
        .args(["rules", "import"])
        .arg(&conflicting)
        .assert()
        .success();
    propose(
        &p,
        &[(
            "Use `math.fsum()` in `average()` for lists of floats",
            "Summing floats in calculator.py",
            "sum() loses precision on long lists",
        )],
    );
    save_failure(
        &p.path,
        manual_failure(
            "20261124-214000-cccc-integration_error",
            &p.path,
            "Added a second rounding helper instead of using round_to() in calculator.py",
        ),
    );
    p
}

#[test]
fn the_charts_are_non_empty_svg_drawn_from_the_store() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let p = seeded();
    let server = Server::start(&p, &[], &[]);
    browser.goto(&server.url);
    browser.goto(&format!("{}/charts", server.base()));
    assert_eq!(browser.text("h1"), "Charts");
    assert!(browser.count("svg.chart") >= 5, "{}", browser.source());
    for id in ["rules", "first-pass", "attempts", "failures", "recurrences"] {
        let marks = browser.count(&format!(
            "#{id} svg.chart rect.bar, #{id} svg.chart circle.dot, #{id} svg.chart polyline.line"
        ));
        assert!(
            marks > 0,
            "the {id} chart draws nothing:\n{}",
            browser.source()
        );
        let size = browser.run_js(&format!(
            "var r = document.querySelector('#{id} svg.chart').getBoundingClientRect(); \
             return [r.width, r.height];"
        ));
        assert!(
            size[0].as_f64().unwrap() > 300.0 && size[1].as_f64().unwrap() > 50.0,
            "{id}: {size}"
        );
    }
    // One passed first-attempt run of two with a first attempt: 50%.
    assert!(browser.text("#first-pass").contains("50%"));
    assert!(
        browser
            .text("#bench")
            .contains("No bench results in the store.")
    );
    println!("screenshot: {}", browser.shot("charts").display());
}

#[test]
fn a_run_in_progress_updates_live_on_its_page() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let p = Project::new();
    let id = "20261124-215501-3fa2";
    let dir = p.path.join(".promptloop/runs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("events.jsonl");
    let line = |v: Value| format!("{v}\n");
    std::fs::write(
        &log,
        line(
            json!({"type": "run.started", "run_id": id, "task": "Fix safe_divide",
            "project_dir": p.path, "agent": "claude", "teacher": "offline",
            "rules_file": "CLAUDE.md", "rules_files": ["CLAUDE.md"], "max_attempts": 2,
            "base_ref": "x"}),
        ),
    )
    .unwrap();
    let server = Server::start(&p, &[], &[]);
    browser.goto(&server.url);
    browser.goto(&format!("{}/runs/{id}", server.base()));
    assert!(
        browser
            .text("#events")
            .contains("run started: Fix safe_divide")
    );
    assert!(browser.text("#live-state").contains("has not finished"));
    let append = |v: Value| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(line(v).as_bytes()).unwrap();
    };
    append(json!({"type": "attempt.started", "attempt": 1, "max_attempts": 2}));
    append(
        json!({"type": "tests.finished", "attempt": 1, "tests": {"outcome": "failed"},
        "failing": ["tests/test_calculator.py::test_safe_divide_by_zero_returns_none"]}),
    );
    browser.wait_until(
        "return document.getElementById('events').innerText.includes('attempt 1: tests failed, 1 failing');",
        "the new events did not arrive",
    );
    append(
        json!({"type": "run.finished", "outcome": "failed", "attempts": 1,
        "rules_learned": 0, "pending": 1, "cost_usd": 0.0, "duration_ms": 10}),
    );
    browser.wait_until(
        "return document.getElementById('live-state').className === 'done';",
        "the page did not see the run finish",
    );
    assert_eq!(browser.count("#events li"), 4);
    println!("screenshot: {}", browser.shot("run-live").display());
}

#[test]
fn a_screenshot_of_every_view() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let p = seeded();
    let server = Server::start(&p, &[], &[]);
    browser.goto(&server.url);
    let listed: Vec<Value> = serde_json::from_slice(
        &p.promptloop()
            .args(["rules", "list", "--status", "all", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let learned = listed
        .iter()
        .find(|r| r["provenance"][0]["failure_id"].is_string())
        .expect("a rule learned from a failure");
    let rule_id = learned["id"].as_str().unwrap();
    let failure_id = learned["provenance"][0]["failure_id"].as_str().unwrap();
    let runs: Vec<Value> = serde_json::from_slice(
        &p.promptloop()
            .args(["history", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let run_id = runs.last().unwrap()["run"]["id"].as_str().unwrap();
    let views = [
        ("inbox", "/".to_string(), "Inbox"),
        ("rules", "/rules".to_string(), "Rules"),
        ("rule", format!("/rules/{rule_id}"), "Rule"),
        ("edit", format!("/rules/{rule_id}/edit"), "Edit"),
        ("failures", "/failures".to_string(), "Failures"),
        ("failure", format!("/failures/{failure_id}"), "Failure"),
        ("report-form", "/report".to_string(), "Report a failure"),
        ("runs", "/runs".to_string(), "Runs"),
        ("run", format!("/runs/{run_id}"), "Run"),
        ("charts-all", "/charts".to_string(), "Charts"),
    ];
    for (name, path, heading) in views {
        browser.goto(&format!("{}{path}", server.base()));
        let h1 = browser.text("h1");
        assert!(h1.starts_with(heading), "{path}: {h1}");
        println!("screenshot: {}", browser.shot(name).display());
    }
    // The inbox shows the conflict side by side and the rule waiting for review.
    browser.goto(&server.base());
    assert_eq!(browser.count(".pair .side"), 2, "{}", browser.text("main"));
    assert!(browser.text(".pair").contains("Return 0, not None"));
    assert!(browser.text("main").contains("math.fsum()"));
    // The rule's page shows the failure that taught it and the attempt's diff.
    browser.goto(&format!("{}/rules/{rule_id}", server.base()));
    let diff = browser.text("pre.diff");
    assert!(
        diff.contains("+    return sum(numbers) / len(numbers)"),
        "{diff}"
    );
    println!("screenshots: {}", shots_dir().display());
}
