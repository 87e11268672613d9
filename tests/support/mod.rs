//! Shared test support: hermetic project repositories, the promptloop binary with a clean
//! environment, a scriptable stand-in for the agent CLI, and the path of the real Claude Code
//! installed from npm (`tests/agents`).

#![allow(dead_code)]

pub mod builders;
pub mod fake_anthropic;
pub mod fake_gemini;
pub mod fake_openai;
pub mod loopback;
pub mod server;
pub mod teacher_loopback;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real Claude Code binary: `$PROMPTLOOP_TEST_CLAUDE`, else `tests/agents/node_modules`.
/// The test suite's script installs it; a missing binary fails the test with the fix.
pub fn claude_bin() -> PathBuf {
    let bin = std::env::var_os("PROMPTLOOP_TEST_CLAUDE").map_or_else(
        || repo_root().join("tests/agents/node_modules/.bin/claude"),
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --no-audit --no-fund --prefix tests/agents` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A real agent CLI from `tests/agents/node_modules/.bin` (or `$env_var`).
fn npm_bin(name: &str, env_var: &str) -> PathBuf {
    let bin = std::env::var_os(env_var).map_or_else(
        || {
            repo_root()
                .join("tests/agents/node_modules/.bin")
                .join(name)
        },
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --no-audit --no-fund --prefix tests/agents` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// The real Codex CLI: `$PROMPTLOOP_TEST_CODEX`, else `tests/agents/node_modules`.
pub fn codex_bin() -> PathBuf {
    npm_bin("codex", "PROMPTLOOP_TEST_CODEX")
}

/// The real Gemini CLI: `$PROMPTLOOP_TEST_GEMINI`, else `tests/agents/node_modules`.
pub fn gemini_bin() -> PathBuf {
    npm_bin("gemini", "PROMPTLOOP_TEST_GEMINI")
}

/// Writes `$HOME/.gemini/settings.json` for Gemini CLI against a fake server: API-key
/// login (without it Gemini CLI exits 41), no usage statistics, no telemetry, and `extra`
/// merged in (e.g. `{"model": {"maxSessionTurns": 2}}`).
pub fn gemini_settings(home: &Path, extra: Value) {
    let mut settings = serde_json::json!({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false}
    });
    if let (Some(base), Value::Object(more)) = (settings.as_object_mut(), extra) {
        base.extend(more);
    }
    let dir = home.join(".gemini");
    std::fs::create_dir_all(&dir).expect("mkdir .gemini");
    std::fs::write(dir.join("settings.json"), settings.to_string()).expect("write settings");
}

/// A temporary git project.
pub struct Project {
    dir: TempDir,
    /// Its canonical path.
    pub path: PathBuf,
    /// A private HOME (and TMPDIR) for the tools run in it.
    pub home: TempDir,
}

impl Project {
    /// An empty repository with one commit.
    pub fn new() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("promptloop-test-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().canonicalize().expect("canonical");
        let home = tempfile::Builder::new()
            .prefix("promptloop-home-")
            .tempdir()
            .expect("home dir");
        let project = Project { dir, path, home };
        project.git(&["init", "-q", "-b", "main"]);
        project
    }

    /// A repository holding a copy of `examples/calculator`, committed.
    pub fn calculator() -> Project {
        let project = Project::new();
        copy_dir(&repo_root().join("examples/calculator"), &project.path);
        project.git(&["add", "-A"]);
        project.git(&["commit", "-qm", "calculator with two bugs"]);
        project
    }

    /// Runs git in the project with a fixed identity; panics on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Test User",
                "-c",
                "user.email=user@example.invalid",
            ])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&self.path)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.home.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file (parents created).
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write");
    }

    /// Reads a file.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path.join(rel)).unwrap_or_default()
    }

    /// Writes a config file outside the project and returns its path.
    pub fn config(&self, yaml: &str) -> PathBuf {
        let path = self.home.path().join("promptloop.yaml");
        std::fs::write(&path, yaml).expect("write config");
        path
    }

    /// The promptloop binary, run in the project with a clean environment.
    pub fn promptloop(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("promptloop").expect("binary");
        cmd.current_dir(&self.path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("TMPDIR", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("LANG", "C.UTF-8")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test User")
            .env("GIT_AUTHOR_EMAIL", "user@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test User")
            .env("GIT_COMMITTER_EMAIL", "user@example.invalid")
            // Keep pytest from writing caches into the project.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTEST_ADDOPTS", "-p no:cacheprovider");
        cmd
    }

    /// Everything a user could lose: HEAD, branch, the raw index, refs outside
    /// refs/promptloop, the stash, and every work-tree file with its mode.
    pub fn state(&self) -> RepoState {
        let mut files = BTreeMap::new();
        collect_files(&self.path, &self.path, &mut files);
        RepoState {
            head: self.git(&["rev-parse", "HEAD"]),
            branch: self.git(&["symbolic-ref", "HEAD"]),
            index: std::fs::read(self.path.join(".git/index")).unwrap_or_default(),
            staged: self.git(&["diff", "--cached"]),
            refs: self
                .git(&["for-each-ref", "--format=%(refname) %(objectname)"])
                .lines()
                .filter(|l| !l.starts_with("refs/promptloop/"))
                .map(str::to_string)
                .collect(),
            stash: self.git(&["stash", "list"]),
            files,
        }
    }
}

/// A comparable picture of a repository.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct RepoState {
    pub head: String,
    pub branch: String,
    pub index: Vec<u8>,
    pub staged: String,
    pub refs: Vec<String>,
    pub stash: String,
    /// path → (mode, bytes), `.git` and `.promptloop` left out.
    pub files: BTreeMap<String, (u32, Vec<u8>)>,
}

fn collect_files(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("prefix")
            .display()
            .to_string();
        if rel == ".git" || rel == ".promptloop" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).expect("meta");
        if meta.is_dir() {
            collect_files(root, &path, out);
        } else {
            out.insert(
                rel,
                (
                    meta.permissions().mode(),
                    std::fs::read(&path).unwrap_or_default(),
                ),
            );
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "__pycache__" || name == ".pytest_cache" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A stand-in agent CLI: a shell script that behaves like `claude -p … --output-format json`
/// according to `$FAKE_AGENT_MODE`:
/// - `nothing`: changes nothing, reports success;
/// - `fix`: writes `fixed` into app.txt, adds new/created.txt, reports success;
/// - `crash`: edits app.txt half-way, then dies with exit 3 and no result;
/// - `hang`: edits app.txt, then sleeps (with a child) until killed;
/// - `root`: refuses like Claude Code does for root with --dangerously-skip-permissions.
pub fn fake_agent(dir: &Path) -> PathBuf {
    let path = dir.join("fake-claude");
    let script = r#"#!/bin/sh
result() {
  printf '{"type":"result","subtype":"success","is_error":%s,"result":"%s","num_turns":2,"total_cost_usd":0.01,"session_id":"s1","usage":{"input_tokens":100,"output_tokens":20},"permission_denials":[]}\n' "$1" "$2"
}
case "${FAKE_AGENT_MODE:-nothing}" in
  nothing) result false "I looked and changed nothing." ;;
  fix) printf 'fixed\n' > app.txt; mkdir -p new; printf 'new\n' > new/created.txt; result false "Fixed app.txt." ;;
  crash) printf 'half-way' >> app.txt; echo "agent exploded" >&2; exit 3 ;;
  hang) printf 'partial' >> app.txt; sleep 300 & sleep 300 ;;
  root) echo "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons" >&2; exit 1 ;;
esac
"#;
    std::fs::write(&path, script).expect("write fake agent");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Parses `--json` output: one event per line.
pub fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The events of one type.
pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Every failure stored in the project's store (pending and learned), as JSON, ordered by id.
/// Reads the store through the library, the way `promptloop learn` does.
pub fn stored_failures(project_dir: &Path) -> Vec<Value> {
    use promptloop::store::RuleStore;
    if !project_dir.join(".promptloop").exists() {
        return Vec::new();
    }
    let store = promptloop::store::open_project(project_dir).expect("open the store");
    let mut out: Vec<Value> = store
        .failures()
        .expect("read failures")
        .iter()
        .map(|f| serde_json::to_value(f).expect("failure as JSON"))
        .collect();
    out.sort_by_key(|v| v["context"]["id"].as_str().unwrap_or("").to_string());
    out
}

/// One stored failure by id.
pub fn stored_failure(project_dir: &Path, id: &str) -> Value {
    stored_failures(project_dir)
        .into_iter()
        .find(|f| f["context"]["id"] == id)
        .unwrap_or_else(|| panic!("no stored failure {id}"))
}
