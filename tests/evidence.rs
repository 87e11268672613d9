//! Evidence that rules help: `promptloop bench` (the example suite in both arms, an
//! interrupted bench resumed, `--learn` on a train/test split) and `promptloop rules
//! validate` (helpful, no effect, harmful → retired), with scripted command agents whose
//! behaviour depends only on their instruction file, and a teacher on a loopback server.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fake_anthropic::{FakeAnthropic, Reply};
use crate::support::{Project, events, of_type, repo_root};

pub(crate) const RULE: &str = "Return None, not 0, from safe_divide when the divisor is zero";

pub(crate) fn teacher_with(rule: &'static str) -> FakeAnthropic {
    FakeAnthropic::start(move |_| {
        Reply::text(format!(
            "The divisor check returns a number.\n\n- **Rule**: {rule}\n\
             - **When**: Writing safe_* helpers\n- **Why**: 0 looks like a valid result.\n"
        ))
    })
}

/// Writes an executable script into the project's private home and returns its path.
fn script(project: &Project, name: &str, body: &str) -> PathBuf {
    let path = project.home.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A calculator agent. Without the rule in AGENTS.md it fixes only `average`. With it:
/// `helpful` fixes safe_divide too; `ignores` does the same as without; `harmful` fixes
/// safe_divide and breaks multiply.
pub(crate) fn calculator_agent(project: &Project, mode: &str) -> PathBuf {
    script(
        project,
        &format!("agent-{mode}.sh"),
        &format!(
            r#"
mode={mode}
python3 - "$mode" <<'EOF'
import pathlib, sys
mode = sys.argv[1]
p = pathlib.Path("calculator.py")
s = p.read_text()
s = s.replace("sum(numbers) // len(numbers)", "sum(numbers) / len(numbers)")
rules = pathlib.Path("AGENTS.md")
if rules.exists() and "Return None, not 0" in rules.read_text() and mode != "ignores":
    s = s.replace("return 0  # bug: 0 looks like a valid result", "return None")
    if mode == "harmful":
        s = s.replace("return a * b", "return a + b")
p.write_text(s)
EOF
echo "edited calculator.py ($mode)"
"#
        ),
    )
}

pub(crate) fn calculator_config(project: &Project, agent: &Path) -> PathBuf {
    project.config(&format!(
        "agent:\n  kind: command\n  command: sh {}\n  timeout: 60\n\
         tests:\n  command: python3 -m pytest tests -q\n\
         teacher:\n  mode: anthropic\nlearning:\n  max_retries: 1\n",
        agent.display()
    ))
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Runs the loop once (it learns RULE) and returns the id of the rule it learned.
fn learn_rule(project: &Project, config: &Path, server: &FakeAnthropic) -> (String, Value) {
    learn_rule_in(project, config, server, &[])
}

/// [`learn_rule`] with `env` set.
pub(crate) fn learn_rule_in(
    project: &Project,
    config: &Path,
    server: &FakeAnthropic,
    env: &[(&str, String)],
) -> (String, Value) {
    let output = project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["run", "Fix the calculator's helpers", "--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(config)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "k")
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run promptloop");
    let evs = events(&output.stdout);
    let learned = of_type(&evs, "rule.learned");
    assert!(
        !learned.is_empty(),
        "{}\n{evs:#?}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run = of_type(&evs, "run.finished")[0].clone();
    (learned[0]["rule_id"].as_str().unwrap().to_string(), run)
}

fn validate(project: &Project, config: &Path, id: &str) -> Value {
    validate_in(project, config, id, &[])
}

/// [`validate`] with `env` set.
pub(crate) fn validate_in(
    project: &Project,
    config: &Path,
    id: &str,
    env: &[(&str, String)],
) -> Value {
    let output = project
        .promptloop()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["rules", "validate", id, "--trials", "2", "--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(config)
        .timeout(Duration::from_secs(180))
        .output()
        .expect("run promptloop rules validate");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json_of(&output)["validated"][0].clone()
}

fn rule_json(project: &Project, id: &str) -> Value {
    let output = project
        .promptloop()
        .args(["rules", "show", id, "--json", "-d"])
        .arg(&project.path)
        .output()
        .expect("rules show");
    json_of(&output)
}

/// The user's files and git state, the instruction file left out (validation renders it).
fn state_without_rules_file(project: &Project) -> crate::support::RepoState {
    let mut state = project.state();
    state.files.remove("AGENTS.md");
    state
}

#[test]
fn validate_finds_a_rule_that_makes_the_fix_right_helpful() {
    let project = Project::calculator();
    let agent = calculator_agent(&project, "helpful");
    let config = calculator_config(&project, &agent);
    let server = teacher_with(RULE);
    let (id, run) = learn_rule(&project, &config, &server);
    assert_eq!(run["outcome"], "passed", "{run}");
    let before = state_without_rules_file(&project);
    let v = validate(&project, &config, &id);
    assert_eq!(v["verdict"], "helpful", "{v:#}");
    assert_eq!(
        (v["with_passed"].as_u64(), v["without_passed"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(v["retired"], false);
    // Reruns happen in copies: the user's work tree, index, branch and refs are as they were.
    assert_eq!(state_without_rules_file(&project), before);
    let rule = rule_json(&project, &id);
    assert_eq!(rule["status"], "active");
    let file = project.read("AGENTS.md");
    assert!(file.contains(RULE), "{file}");
    assert!(
        file.contains("1 of 1 rules here is proven helpful by reruns"),
        "{file}"
    );
    let shown = project
        .promptloop()
        .args(["rules", "show", &id, "-d"])
        .arg(&project.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("validation: helpful: passed 2/2 with it, 0/2 without"),
        "{text}"
    );
}

#[test]
fn validate_finds_a_rule_the_agent_ignores_has_no_effect() {
    let project = Project::calculator();
    let agent = calculator_agent(&project, "ignores");
    let config = calculator_config(&project, &agent);
    let server = teacher_with(RULE);
    let (id, run) = learn_rule(&project, &config, &server);
    assert_eq!(run["outcome"], "failed", "{run}");
    let v = validate(&project, &config, &id);
    assert_eq!(v["verdict"], "no_effect", "{v:#}");
    assert_eq!(
        (v["with_passed"].as_u64(), v["without_passed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["broken"], serde_json::json!([]));
    assert_eq!(rule_json(&project, &id)["status"], "active");
    assert!(project.read("AGENTS.md").contains(RULE));
}

#[test]
fn validate_retires_a_rule_that_makes_the_agent_break_another_test() {
    let project = Project::calculator();
    let agent = calculator_agent(&project, "harmful");
    let config = calculator_config(&project, &agent);
    let server = teacher_with(RULE);
    let (id, _) = learn_rule(&project, &config, &server);
    assert!(project.read("AGENTS.md").contains(RULE));
    let v = validate(&project, &config, &id);
    assert_eq!(v["verdict"], "harmful", "{v:#}");
    assert_eq!(
        v["broken"],
        serde_json::json!(["tests/test_calculator.py::test_multiply"]),
        "{v:#}"
    );
    assert_eq!(v["retired"], true);
    // Retired, out of the file, and `rules show` says why.
    let rule = rule_json(&project, &id);
    assert_eq!(rule["status"], "retired");
    let note = rule["note"].as_str().unwrap();
    assert!(
        note.contains("harmful in validation") && note.contains("test_multiply"),
        "{note}"
    );
    let file = project.read("AGENTS.md");
    assert!(!file.contains(RULE), "{file}");
    let shown = project
        .promptloop()
        .args(["rules", "show", &id, "-d"])
        .arg(&project.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("note:     retired: harmful in validation"),
        "{text}"
    );
}

#[test]
fn run_validate_validates_the_rules_the_run_learned() {
    let project = Project::calculator();
    let agent = calculator_agent(&project, "helpful");
    let config = calculator_config(&project, &agent);
    let server = teacher_with(RULE);
    let output = project
        .promptloop()
        .args([
            "run",
            "Fix the calculator's helpers",
            "--json",
            "--validate",
            "2",
            "-d",
        ])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "k")
        .timeout(Duration::from_secs(180))
        .output()
        .expect("run promptloop");
    assert_eq!(output.status.code(), Some(0));
    let evs = events(&output.stdout);
    let validated = of_type(&evs, "rule.validated");
    assert_eq!(validated.len(), 1, "{evs:#?}");
    assert_eq!(validated[0]["verdict"], "helpful");
    assert_eq!(validated[0]["trials"], 1);
}

#[test]
fn learning_validate_in_the_config_validates_after_every_run_within_its_budget() {
    let project = Project::calculator();
    let agent = calculator_agent(&project, "helpful");
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: sh {}\n  timeout: 60\n\
         tests:\n  command: python3 -m pytest tests -q\n\
         teacher:\n  mode: anthropic\n\
         learning:\n  max_retries: 1\n  validate: true\n  validate_budget: 2\n",
        agent.display()
    ));
    let server = teacher_with(RULE);
    let output = project
        .promptloop()
        .args(["run", "Fix the calculator's helpers", "--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "k")
        .timeout(Duration::from_secs(180))
        .output()
        .expect("run promptloop");
    assert_eq!(output.status.code(), Some(0));
    let evs = events(&output.stdout);
    let validated = of_type(&evs, "rule.validated");
    assert_eq!(validated.len(), 1, "{evs:#?}");
    assert_eq!(validated[0]["verdict"], "helpful");
    // A budget of 2 reruns is one with the rule and one without.
    assert_eq!(validated[0]["trials"], 1);
}

#[test]
fn an_unproven_rule_ages_out_of_the_file_after_the_configured_days_and_0_keeps_it() {
    let project = Project::calculator();
    let agent = calculator_agent(&project, "helpful");
    let config_with = |days: u32| {
        project.config(&format!(
            "agent:\n  kind: command\n  command: sh {}\n  timeout: 60\n\
             tests:\n  command: python3 -m pytest tests -q\n\
             teacher:\n  mode: anthropic\nlearning:\n  max_retries: 0\n\
             rules:\n  unproven_max_age_days: {days}\n",
            agent.display()
        ))
    };
    let config = config_with(30);
    let server = teacher_with(RULE);
    // No retry: the rule is learned once and no run passes after it, so it has no evidence.
    let (id, _) = learn_rule(&project, &config, &server);
    assert!(project.read("AGENTS.md").contains(RULE));
    let db = project.path.join(".promptloop/promptloop.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE rules SET created_at = '2026-01-05T10:00:00+00:00', \
             activated_at = '2026-01-05T10:00:00+00:00' WHERE id = ?1",
            [&id],
        )
        .unwrap();
    let render = |config: &Path| {
        let output = project
            .promptloop()
            .args(["rules", "render", "-d"])
            .arg(&project.path)
            .arg("--config")
            .arg(config)
            .output()
            .expect("rules render");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    render(&config);
    let file = project.read("AGENTS.md");
    assert!(!file.contains(RULE), "{file}");
    assert!(file.contains("without evidence for 30 days"), "{file}");
    assert_eq!(
        rule_json(&project, &id)["status"],
        "active",
        "it stays in the store"
    );
    render(&config_with(0));
    assert!(project.read("AGENTS.md").contains(RULE));
}

// ---------------------------------------------------------------------------------------
// bench

/// Every file under a directory with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

fn toolchain_env(cmd: &mut assert_cmd::Command) {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    cmd.env(
        "RUSTUP_HOME",
        std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| home.join(".rustup").into()),
    )
    .env(
        "CARGO_HOME",
        std::env::var_os("CARGO_HOME").unwrap_or_else(|| home.join(".cargo").into()),
    )
    .env("GOPROXY", "off")
    .env("GOFLAGS", "-mod=mod");
}

#[test]
fn bench_of_the_example_suite_with_a_scripted_agent_has_both_arms() {
    let project = Project::new();
    let examples = repo_root().join("examples/bench");
    let before = tree(&examples);
    // The project's rules: the example rules, imported into its store.
    let imported = project
        .promptloop()
        .args(["rules", "import"])
        .arg(examples.join("example-rules.md"))
        .arg("-d")
        .arg(&project.path)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: sh '{}'\n  timeout: 120\nlearning:\n  max_retries: 0\n",
        examples.join("scripted-agent/agent.sh").display()
    ));
    let mut cmd = project.promptloop();
    toolchain_env(&mut cmd);
    let output = cmd
        .arg("bench")
        .arg(examples.join("suite.yaml"))
        .args(["--json", "--jobs", "2", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .timeout(Duration::from_secs(600))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_of(&output);
    let arms = report["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2, "{report:#}");
    assert_eq!(arms[0]["name"], "rules");
    assert_eq!(arms[0]["rules"], 6);
    assert_eq!(arms[1]["name"], "none");
    for a in arms {
        for key in [
            "trials",
            "passed",
            "pass_rate",
            "ci_low",
            "ci_high",
            "mean_attempts",
        ] {
            assert!(a.get(key).is_some(), "{key} missing in {a}");
        }
        assert_eq!(a["trials"], 6);
    }
    // The scripted agent gets each task right only when its rule is in AGENTS.md.
    assert_eq!(arms[0]["passed"], 6, "{report:#}");
    assert_eq!(arms[1]["passed"], 0, "{report:#}");
    assert!(arms[0]["ci_low"].as_f64().unwrap() > arms[1]["ci_high"].as_f64().unwrap());
    let diff = &report["differences"][0];
    assert_eq!(
        (diff["arm"].as_str(), diff["baseline"].as_str()),
        (Some("rules"), Some("none"))
    );
    assert_eq!(diff["diff"], 1.0);
    assert_eq!(diff["significant"], true);
    let tasks = report["tasks"].as_array().unwrap();
    let ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "py-slugify",
            "py-median",
            "js-duration",
            "js-merge",
            "go-wordcount",
            "rust-roman"
        ]
    );
    for t in tasks {
        assert_eq!(t["arms"][0]["passed"], 1, "{t}");
        assert_eq!(t["arms"][1]["passed"], 0, "{t}");
    }
    // The none arm's failures are the hidden tests' (the visible ones pass).
    let py = report["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "py-median" && t["arm"] == "none")
        .unwrap();
    let failing = py["failing"][0].as_array().unwrap();
    assert!(
        failing
            .iter()
            .all(|f| f.as_str().unwrap().contains("test_stats_hidden")),
        "{py:#}"
    );
    // The suite's files were only read.
    assert_eq!(tree(&examples), before);
    assert_eq!(report["complete"], true);
}

/// A suite of `n` tasks whose check passes when the agent wrote done.txt; the agent waits
/// `sleep` seconds and writes it only when AGENTS.md holds "KEY-RULE".
fn tiny_suite(project: &Project, n: usize, sleep: u32, train: usize) -> (PathBuf, PathBuf) {
    let dir = project.home.path().join("suite");
    std::fs::create_dir_all(dir.join("p")).unwrap();
    std::fs::write(dir.join("p/README"), "a project\n").unwrap();
    std::fs::create_dir_all(dir.join("hidden")).unwrap();
    std::fs::write(dir.join("hidden/expected.txt"), "done\n").unwrap();
    let mut yaml = String::from("tasks:\n");
    for i in 0..n {
        let split = if i < train { "train" } else { "test" };
        yaml.push_str(&format!(
            "  - id: t{i}\n    split: {split}\n    project: p\n    task: Finish task {i}\n    \
             check: cmp done.txt expected.txt\n    hidden_tests: hidden\n"
        ));
    }
    let suite = dir.join("suite.yaml");
    std::fs::write(&suite, yaml).unwrap();
    let agent = script(
        project,
        "tiny-agent.sh",
        &format!(
            "sleep {sleep}\n\
             if [ -e expected.txt ]; then echo 'saw the hidden test'; exit 7; fi\n\
             if grep -q KEY-RULE AGENTS.md 2>/dev/null; then printf 'done\\n' > done.txt; \
             else printf 'not done\\n' > done.txt; fi\n"
        ),
    );
    (suite, agent)
}

const KEY_RULE_MD: &str = "### Finishing\n- **Rule**: Write done.txt with the word done (KEY-RULE)\n\
    - **When**: Finishing a task\n- **Why**: The check compares it\n";

#[test]
fn an_interrupted_bench_keeps_its_trials_and_resume_goes_on() {
    let project = Project::new();
    let (suite, agent) = tiny_suite(&project, 3, 1, 0);
    let rules = project.home.path().join("key.md");
    std::fs::write(&rules, KEY_RULE_MD).unwrap();
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: sh {}\n  timeout: 60\nlearning:\n  max_retries: 0\n",
        agent.display()
    ));
    let bin = assert_cmd::cargo::cargo_bin("promptloop");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "bench".into(),
            suite.display().to_string(),
            "--arms".into(),
            format!("{},none", rules.display()),
            "--json".into(),
            "-d".into(),
            project.path.display().to_string(),
            "--config".into(),
            config.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let child = std::process::Command::new(&bin)
        .args(args(&[]))
        .current_dir(&project.path)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", project.home.path())
        .env("TMPDIR", project.home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Ctrl-C once two trials are kept in the store.
    let suite_key = suite.canonicalize().unwrap().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = promptloop::store::open_project(&project.path)
            .ok()
            .and_then(|s| {
                let run = s.bench_run(None, &suite_key).ok()??;
                s.bench_trials(&run.id).ok().map(|t| t.len())
            })
            .unwrap_or(0);
        if done >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no trial finished in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first = json_of(&output);
    assert_eq!(first["complete"], false);
    let kept = first["trials"].as_array().unwrap().len();
    assert!((2..6).contains(&kept), "{first:#}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--resume"));
    // Resume: the same bench goes on and runs only what is missing.
    let resumed = project
        .promptloop()
        .args(args(&["--resume"]))
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let second = json_of(&resumed);
    assert_eq!(second["bench_id"], first["bench_id"]);
    assert_eq!(second["complete"], true);
    assert_eq!(second["ran_now"].as_u64().unwrap() as usize, 6 - kept);
    let trials = second["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    let mut keys: Vec<String> = trials
        .iter()
        .map(|t| format!("{}/{}/{}", t["task"], t["arm"], t["trial"]))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 6, "a trial ran twice: {keys:?}");
    assert_eq!(second["arms"][0]["name"], "key");
    assert_eq!(second["arms"][0]["passed"], 3);
    assert_eq!(second["arms"][1]["passed"], 0);
    // The agent never saw the hidden file (it exits 7 if it does).
    assert!(trials.iter().all(|t| t["outcome"] != "error"), "{second:#}");
    // A finished bench has nothing to resume.
    let again = project
        .promptloop()
        .args(args(&["--resume"]))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn bench_learn_learns_on_train_and_the_learned_rules_beat_none_on_test() {
    let project = Project::new();
    let (suite, agent) = tiny_suite(&project, 3, 0, 1);
    let server = FakeAnthropic::start(|_| {
        Reply::text(
            "- **Rule**: Write done.txt with the word done (KEY-RULE)\n\
             - **When**: Finishing a task\n- **Why**: The check compares it with expected.txt\n",
        )
    });
    let config = project.config(&format!(
        "agent:\n  kind: command\n  command: sh {}\n  timeout: 60\n\
         teacher:\n  mode: anthropic\nlearning:\n  max_retries: 1\n",
        agent.display()
    ));
    let output = project
        .promptloop()
        .arg("bench")
        .arg(&suite)
        .args(["--learn", "--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "k")
        .timeout(Duration::from_secs(180))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_of(&output);
    assert_eq!(report["learned_rules"], 1, "{report:#}");
    let train = &report["train"];
    assert_eq!(train["trials"], 1);
    // The train task failed, was taught, and passed on its retry.
    assert_eq!(train["passed"], 1);
    assert_eq!(train["mean_attempts"], 2.0);
    let arms = report["arms"].as_array().unwrap();
    assert_eq!(arms[0]["name"], "rules");
    assert_eq!(arms[0]["rules"], 1);
    // Only the two test tasks are evaluated; with the learned rule they pass at once.
    assert_eq!(
        (arms[0]["trials"].as_u64(), arms[0]["passed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(arms[0]["first_attempt_passed"], 2);
    // Without it the agent fails the first try and learns within the trial.
    assert_eq!(arms[1]["name"], "none");
    assert_eq!(arms[1]["first_attempt_passed"], 0);
    assert_eq!(arms[1]["mean_attempts"], 2.0);
    assert!(arms[1]["teacher_input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(arms[0]["teacher_input_tokens"], 0);
    // The user's project's own rules are untouched: nothing was learned into its store.
    assert!(!project.path.join("AGENTS.md").exists());
}

#[test]
fn bench_mistakes_are_usage_errors() {
    let project = Project::new();
    let (suite, _) = tiny_suite(&project, 1, 0, 0);
    for (args, expected) in [
        (
            vec!["--arms", "nosuch.json"],
            "is not `rules`, `none` or a rules file",
        ),
        (vec!["--trials", "0"], "--trials must be at least 1"),
        (vec!["--learn"], "has no task with `split: train`"),
        (vec!["--resume"], "no unfinished bench"),
    ] {
        let output = project
            .promptloop()
            .arg("bench")
            .arg(&suite)
            .args(&args)
            .arg("-d")
            .arg(&project.path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    std::fs::write(project.home.path().join("bad.yaml"), "tasks:\n  - id: x\n").unwrap();
    let output = project
        .promptloop()
        .arg("bench")
        .arg(project.home.path().join("bad.yaml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.yaml"));
}

// ---------------------------------------------------------------------------------------
// stats and recurrence

fn report(project: &Project, server: &FakeAnthropic, description: &str) {
    let output = project
        .promptloop()
        .args(["report-failure", "-f", "planning_error", "-D", description])
        .args(["--task", "Add caching", "--teacher", "anthropic", "-d"])
        .arg(&project.path)
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "k")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn stats_count_runs_failures_and_recurrences_and_plot_them() {
    let project = Project::calculator();
    let agent = calculator_agent(&project, "helpful");
    let config = calculator_config(&project, &agent);
    let server = teacher_with(RULE);
    let (run_rule, _) = learn_rule(&project, &config, &server);
    // Manual reports: a recurrence only when the fingerprint matches (same type, same
    // description up to numbers and quoted values).
    let planner = FakeAnthropic::start(|_| {
        Reply::text(
            "- **Rule**: Extend the existing cache layer instead of building a new one\n\
             - **When**: Adding caching\n- **Why**: Two caches drift apart\n",
        )
    });
    report(
        &project,
        &planner,
        "Built a new cache with 3 layers instead of extending 'cache.py'",
    );
    report(
        &project,
        &planner,
        "Built a new cache with 5 layers instead of extending 'lru.py'",
    );
    report(
        &project,
        &planner,
        "Put the cache settings into the wrong config file",
    );
    let output = project
        .promptloop()
        .args(["stats", "--json", "--plot"])
        .arg(project.home.path().join("charts"))
        .arg("-d")
        .arg(&project.path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stats = json_of(&output);
    let t = &stats["totals"];
    assert_eq!(t["runs"], 1, "{stats:#}");
    assert_eq!(t["first_attempt_passed"], 0);
    assert_eq!(t["first_attempt_rate"], 0.0);
    assert_eq!(t["passed"], 1);
    assert_eq!(t["attempts_to_green"], 2.0);
    assert_eq!(t["failures"], 4);
    assert_eq!(stats["failures_by_type"]["planning_error"], 3);
    assert_eq!(stats["failures_by_type"]["test_failure"], 1);
    assert_eq!(stats["failures_by_source"]["manual"], 3);
    assert_eq!(t["recurrences"], 1, "{stats:#}");
    let rules = stats["rules"].as_array().unwrap();
    let cache = rules
        .iter()
        .find(|r| {
            r["rule"]
                .as_str()
                .unwrap()
                .starts_with("Extend the existing cache")
        })
        .unwrap();
    assert_eq!(cache["learned"], 3, "{cache}");
    assert_eq!(cache["recurred"], 1, "{cache}");
    let from_run = rules.iter().find(|r| r["id"] == run_rule.as_str()).unwrap();
    assert_eq!(from_run["helped"], 1, "{from_run}");
    assert_eq!(from_run["recurred"], 0);
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0]["failures"], 4);
    let charts = stats["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 5);
    for c in charts {
        let svg = std::fs::read_to_string(c.as_str().unwrap()).unwrap();
        assert!(
            svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"),
            "{c}"
        );
    }
    // The table says the same in words.
    let text = project
        .promptloop()
        .args(["stats", "-d"])
        .arg(&project.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("recurrences of failures that already had a rule: 1"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// the real Claude Code against a scripted model

/// The real Claude Code (from npm) against a loopback model whose answers depend on whether
/// the learned rule reached the request through CLAUDE.md: the loop learns the rule,
/// validation finds it helpful, and bench's rules arm beats its none arm.
#[test]
fn with_claude_code_a_rule_that_fixes_the_agent_is_helpful_and_wins_the_bench() {
    use crate::e2e_claude::{RULE_TEXT, agent, teacher};
    use crate::support::claude_bin;
    use crate::support::fake_anthropic::Request;

    let project = Project::calculator();
    let server =
        FakeAnthropic::start(|r: &Request| if r.is_agent() { agent(r) } else { teacher(r) });
    let config_for = |retries: u32| {
        project.config(&format!(
            "claude:\n  command: {}\n  permission_mode: acceptEdits\n  max_turns: 8\n  timeout: 120\n\
             tests:\n  command: python3 -m pytest tests -q\n  timeout: 60\n\
             teacher:\n  mode: anthropic\n  timeout: 30\nlearning:\n  max_retries: {retries}\n",
            claude_bin().display()
        ))
    };
    let config = config_for(1);
    let output = project
        .promptloop()
        .args([
            "run",
            "Fix the calculator so its tests pass",
            "--json",
            "-d",
        ])
        .arg(&project.path)
        .arg("--config")
        .arg(&config)
        .envs(server.claude_code_env())
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run promptloop");
    let evs = events(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{evs:#?}");
    let id = of_type(&evs, "rule.learned")[0]["rule_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Validation: with the rule Claude Code fixes both bugs; without it, only one.
    let output = project
        .promptloop()
        .args(["rules", "validate", &id, "--trials", "1", "--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(config_for(0))
        .envs(server.claude_code_env())
        .timeout(Duration::from_secs(300))
        .output()
        .expect("rules validate");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict = json_of(&output)["validated"][0].clone();
    assert_eq!(verdict["verdict"], "helpful", "{verdict:#}");
    assert_eq!(verdict["with_passed"], 1);
    assert_eq!(verdict["without_passed"], 0);
    assert!(project.read("CLAUDE.md").contains(RULE_TEXT));

    // Bench: the calculator as a one-task suite, the project's rules against none.
    let suite_dir = project.home.path().join("suite");
    std::fs::create_dir_all(&suite_dir).unwrap();
    let suite = suite_dir.join("suite.yaml");
    std::fs::write(
        &suite,
        format!(
            "tasks:\n  - id: calculator\n    project: {}\n    task: Fix the calculator so its tests pass\n    \
             check: python3 -m pytest tests -q\n",
            repo_root().join("examples/calculator").display()
        ),
    )
    .unwrap();
    let output = project
        .promptloop()
        .arg("bench")
        .arg(&suite)
        .args(["--json", "-d"])
        .arg(&project.path)
        .arg("--config")
        .arg(config_for(0))
        .envs(server.claude_code_env())
        .timeout(Duration::from_secs(300))
        .output()
        .expect("promptloop bench");
    let report = json_of(&output);
    let arm = |name: &str| {
        report["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no arm {name}: {report:#}"))
    };
    assert_eq!(arm("rules")["passed"], 1, "{report:#}");
    assert_eq!(arm("none")["passed"], 0, "{report:#}");
}
