//! Builders that make a new end-to-end test a few lines: a user's repository in the middle
//! of their work, a config file, and one run of the binary with its outcome read back.
//!
//! ```ignore
//! let p = Project::busy();
//! let before = p.state();
//! let config = Config::new().fake_agent(&p).tests("grep -q '^fixed$' app.txt").offline().write(&p);
//! let out = p.run(&["run", "make app.txt say fixed"], &config).env("FAKE_AGENT_MODE", "fix").go();
//! out.assert_code(0);
//! before.assert_same_except(&p.state(), &["app.txt", "new/created.txt"]);
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Project, RepoState, events, fake_agent, of_type};

impl Project {
    /// A repository in the middle of someone's work: two commits, a stash entry, a staged
    /// change, an unstaged change, an untracked file and an ignored file. `app.txt` says
    /// `broken` (the fake agent's `fix` mode makes it say `fixed`).
    pub fn busy() -> Project {
        let p = Project::new();
        p.write(".gitignore", "*.log\n");
        p.write("app.txt", "broken\n");
        p.write("lib.txt", "library v1\n");
        p.git(&["add", "-A"]);
        p.git(&["commit", "-qm", "first"]);
        p.write("stashed.txt", "stash me\n");
        p.git(&["add", "stashed.txt"]);
        p.git(&["stash", "-q"]);
        p.write("lib.txt", "library v2\n");
        p.git(&["add", "lib.txt"]);
        p.git(&["commit", "-qm", "recent work"]);
        p.write("staged.txt", "staged content\n");
        p.git(&["add", "staged.txt"]);
        p.write("lib.txt", "library v3 (unstaged)\n");
        p.write("notes/untracked.md", "my untracked notes\n");
        p.write("debug.log", "ignored\n");
        p
    }

    /// One run of the binary with `args`, `--json` and `-c config` (when given) added.
    pub fn run(&self, args: &[&str], config: &Path) -> RunBuilder {
        let mut cmd = self.promptloop();
        cmd.args(args).arg("--json").arg("-c").arg(config);
        RunBuilder {
            cmd,
            timeout: Duration::from_secs(120),
        }
    }

    /// One run of the binary with exactly `args` (no `--json`, no config).
    pub fn run_plain(&self, args: &[&str]) -> RunBuilder {
        let mut cmd = self.promptloop();
        cmd.args(args);
        RunBuilder {
            cmd,
            timeout: Duration::from_secs(120),
        }
    }
}

impl RepoState {
    /// Panics unless `after` is the same repository: HEAD, branch, raw index, staged
    /// changes, refs outside refs/promptloop, stash, and every file but those in `changed`.
    pub fn assert_same_except(&self, after: &RepoState, changed: &[&str]) {
        assert_eq!(self.head, after.head, "HEAD moved");
        assert_eq!(self.branch, after.branch, "branch changed");
        assert_eq!(self.index, after.index, "index changed");
        assert_eq!(self.staged, after.staged, "staged changes differ");
        assert_eq!(self.refs, after.refs, "refs changed");
        assert_eq!(self.stash, after.stash, "stash changed");
        let keep = |p: &&String| !changed.contains(&p.as_str());
        assert_eq!(
            self.files.keys().filter(keep).collect::<Vec<_>>(),
            after.files.keys().filter(keep).collect::<Vec<_>>(),
            "files appeared or disappeared"
        );
        for (path, content) in self.files.iter().filter(|(p, _)| keep(p)) {
            assert_eq!(Some(content), after.files.get(path), "{path} changed");
        }
    }

    /// Panics unless `after` is the same repository in every respect.
    pub fn assert_same(&self, after: &RepoState) {
        self.assert_same_except(after, &[]);
    }
}

/// A config file, section by section; what is not set keeps the built-in default.
#[derive(Default)]
pub struct Config {
    sections: Vec<String>,
}

impl Config {
    /// An empty config.
    pub fn new() -> Config {
        Config::default()
    }

    /// Any YAML, appended as it is.
    pub fn yaml(mut self, yaml: &str) -> Config {
        self.sections.push(yaml.trim_end().to_string());
        self
    }

    /// The stand-in agent CLI (see [`fake_agent`]) as `claude.command`, with a short timeout.
    pub fn fake_agent(self, project: &Project) -> Config {
        let agent = fake_agent(project.home.path());
        self.yaml(&format!(
            "claude:\n  command: {}\n  timeout: 2",
            agent.display()
        ))
    }

    /// A `command` agent: `agent.command` (a shell template with `{task}`), its rules file.
    pub fn command_agent(self, command: &str, rules_file: &str) -> Config {
        self.yaml(&format!(
            "agent:\n  kind: command\n  command: {}\n  rules_file: {rules_file}",
            yaml_string(command)
        ))
    }

    /// `tests.command`, detected framework, 10 s.
    pub fn tests(self, command: &str) -> Config {
        self.yaml(&format!(
            "tests:\n  command: {}\n  framework: auto\n  timeout: 10",
            yaml_string(command)
        ))
    }

    /// The offline teacher (no network).
    pub fn offline(self) -> Config {
        self.yaml("teacher:\n  mode: offline")
    }

    /// An Anthropic Messages teacher at `base_url` (a loopback server).
    pub fn anthropic(self, base_url: &str) -> Config {
        self.yaml(&format!(
            "teacher:\n  mode: anthropic\n  base_url: {base_url}\n  timeout: 20"
        ))
    }

    /// `rules.file`.
    pub fn rules_file(self, path: &Path) -> Config {
        self.yaml(&format!("rules:\n  file: {}", path.display()))
    }

    /// `learning.max_retries`.
    pub fn retries(self, n: u32) -> Config {
        self.yaml(&format!("learning:\n  max_retries: {n}"))
    }

    /// The YAML text.
    pub fn text(&self) -> String {
        let mut text = self.sections.join("\n");
        text.push('\n');
        text
    }

    /// Writes it outside the project (in its private HOME) and returns the path.
    pub fn write(&self, project: &Project) -> PathBuf {
        project.config(&self.text())
    }
}

/// A double-quoted YAML scalar.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A run of the binary being set up.
pub struct RunBuilder {
    cmd: assert_cmd::Command,
    timeout: Duration,
}

impl RunBuilder {
    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> RunBuilder {
        self.cmd.env(name, value);
        self
    }

    /// Sets environment variables.
    pub fn envs(mut self, vars: Vec<(&'static str, String)>) -> RunBuilder {
        self.cmd.envs(vars);
        self
    }

    /// More arguments.
    pub fn args(mut self, args: &[&str]) -> RunBuilder {
        self.cmd.args(args);
        self
    }

    /// The limit for the whole run (default 120 s).
    pub fn timeout(mut self, timeout: Duration) -> RunBuilder {
        self.timeout = timeout;
        self
    }

    /// Runs it to the end.
    pub fn go(mut self) -> Outcome {
        let out = self
            .cmd
            .timeout(self.timeout)
            .output()
            .expect("run promptloop");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        Outcome {
            code: out.status.code(),
            events: if stdout.trim_start().starts_with('{') {
                events(&out.stdout)
            } else {
                Vec::new()
            },
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// The `--json` events, when stdout held them.
    pub events: Vec<Value>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing stderr and the events, unless the run exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Outcome {
        assert_eq!(
            self.code,
            Some(code),
            "stderr: {}\nstdout: {}",
            self.stderr,
            self.stdout
        );
        self
    }

    /// The events of one type.
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        of_type(&self.events, kind)
    }

    /// The `run.finished` event.
    pub fn finished(&self) -> &Value {
        self.of_type("run.finished")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no run.finished event: {self:?}"))
    }
}
