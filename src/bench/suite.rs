//! The bench suite file: tasks, each with a project, the task text, a check command, and
//! optionally hidden tests, a set-up command and settings of its own; a `train`/`test` split.
//!
//! ```yaml
//! name: example
//! settings:                 # merged into the config for every task (optional)
//!   learning: {max_retries: 1}
//! tasks:
//!   - id: py-slugify
//!     split: test           # or train (learned on by `--learn`); default test
//!     project: tasks/py-slugify/project     # a directory, relative to this file
//!     task: "Make slugify() turn titles into URL slugs"
//!     check: python3 -m pytest -q
//!     hidden_tests: tasks/py-slugify/hidden # copied in for the check only
//!     setup: pip install -e .               # run in the copy before the agent
//!     dir: packages/core                    # work in a subdirectory (optional)
//!   - id: upstream-bug
//!     repo: https://example.invalid/x.git   # or a git repository and a revision
//!     rev: 4f2a9c1
//!     task: "…"
//!     check: go test ./...
//!     agent: {kind: codex}                  # the task's own agent / teacher settings
//!     teacher: {mode: offline}
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::settings::Settings;

/// Whether a task is learned on (`--learn`) or evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// `--learn` runs the loop on it first, and the rules it learns form the `rules` arm.
    Train,
    /// Evaluated in every arm.
    #[default]
    Test,
}

impl Split {
    /// The spelling in the suite.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Where a task's project comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A directory, copied (only what git would keep, when it is in a work tree).
    Dir(PathBuf),
    /// A git repository (a path or URL), cloned, at `rev` (default: its HEAD).
    Git {
        /// Path or URL.
        repo: String,
        /// Commit, tag, branch or ref.
        rev: Option<String>,
    },
}

/// One task of a suite, checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Task {
    /// Unique within the suite: letters, digits, `.`, `_`, `-`.
    pub id: String,
    /// Train or test.
    pub split: Split,
    /// The project.
    pub source: Source,
    /// What the agent is asked to do.
    pub task: String,
    /// The command whose exit status says whether the task is done (run through the shell).
    pub check: String,
    /// `tests.framework` for the check (default: detected from the command and project).
    pub framework: Option<String>,
    /// A directory whose files are copied over the project for the check only.
    pub hidden_tests: Option<PathBuf>,
    /// Run in the copy before the agent (install dependencies, build).
    pub setup: Option<String>,
    /// The directory inside the project the agent and the check work in (a monorepo's
    /// package); default the project's top.
    pub dir: Option<PathBuf>,
    /// Settings of its own, merged over the config (`settings`, `agent`, `teacher`).
    pub overrides: Value,
}

/// A suite, checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suite {
    /// Its name (default: the file's stem).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The directory relative paths are taken from.
    pub dir: PathBuf,
    /// A hash of the file's text.
    pub hash: String,
    /// The tasks, in file order.
    pub tasks: Vec<Task>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    settings: Option<Value>,
    tasks: Vec<RawTask>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: String,
    #[serde(default)]
    split: Split,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    repo: Option<String>,
    #[serde(default)]
    rev: Option<String>,
    task: String,
    check: String,
    #[serde(default)]
    framework: Option<String>,
    #[serde(default)]
    hidden_tests: Option<String>,
    #[serde(default)]
    setup: Option<String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    agent: Option<Value>,
    #[serde(default)]
    teacher: Option<Value>,
    #[serde(default)]
    settings: Option<Value>,
}

/// FNV-1a of the text, as hex: enough to notice an edited suite.
pub fn text_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Reads and checks a suite file. Errors name the file (and line, for YAML errors).
pub fn load(path: &Path) -> Result<Suite, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("read the suite {}: {e}", path.display()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("resolve {}: {e}", dir.display()))?;
    parse(&text, path, &dir)
}

/// Parses suite text; relative paths are taken from `dir`.
pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<Suite, String> {
    let shown = path.display();
    let raw: RawSuite = serde_saphyr::from_str(text).map_err(|e| {
        let at = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        let message = serde_saphyr::MessageFormatter::format_message(
            &serde_saphyr::DefaultMessageFormatter,
            e.without_snippet(),
        );
        let message: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{shown}{at}: {message}")
    })?;
    if raw.tasks.is_empty() {
        return Err(format!("{shown}: the suite has no tasks"));
    }
    let common = match raw.settings {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            return Err(format!(
                "{shown}: `settings` must be a mapping of config keys"
            ));
        }
    };
    let mut seen = BTreeSet::new();
    let mut tasks = Vec::new();
    for t in raw.tasks {
        let place = format!("{shown}: task {:?}", t.id);
        if t.id.is_empty()
            || !t
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(format!(
                "{place}: an id is letters, digits, `.`, `_` and `-` only"
            ));
        }
        if !seen.insert(t.id.clone()) {
            return Err(format!("{place}: the id is used twice"));
        }
        if t.task.trim().is_empty() {
            return Err(format!(
                "{place}: `task` is empty; say what the agent should do"
            ));
        }
        if t.check.trim().is_empty() {
            return Err(format!(
                "{place}: `check` is empty; give the command that checks the work"
            ));
        }
        let source = match (&t.project, &t.repo) {
            (Some(project), None) => {
                if t.rev.is_some() {
                    return Err(format!(
                        "{place}: `rev` goes with `repo`, not with `project`"
                    ));
                }
                let p = dir.join(project);
                if !p.is_dir() {
                    return Err(format!(
                        "{place}: project {} is not a directory",
                        p.display()
                    ));
                }
                Source::Dir(p)
            }
            (None, Some(repo)) => {
                // A path that exists is taken from the suite's directory; anything else is
                // handed to git as it is (a URL).
                let local = dir.join(repo);
                let repo = if local.exists() {
                    local.display().to_string()
                } else {
                    repo.clone()
                };
                Source::Git {
                    repo,
                    rev: t.rev.clone(),
                }
            }
            _ => {
                return Err(format!(
                    "{place}: give either `project` (a directory) or `repo` (with an optional `rev`)"
                ));
            }
        };
        let hidden_tests = match &t.hidden_tests {
            None => None,
            Some(h) => {
                let p = dir.join(h);
                if !p.is_dir() {
                    return Err(format!(
                        "{place}: hidden_tests {} is not a directory",
                        p.display()
                    ));
                }
                Some(p)
            }
        };
        let workdir = match &t.dir {
            None => None,
            Some(d) => {
                let p = PathBuf::from(d);
                if p.is_absolute()
                    || p.components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(format!(
                        "{place}: `dir` is a directory inside the project (relative, no `..`)"
                    ));
                }
                Some(p)
            }
        };
        let mut overrides = common.clone();
        for (key, value) in [
            ("settings", t.settings),
            ("agent", t.agent),
            ("teacher", t.teacher),
        ] {
            match value {
                None | Some(Value::Null) => {}
                Some(v @ Value::Object(_)) if key == "settings" => merge(&mut overrides, v),
                Some(v @ Value::Object(_)) => merge(&mut overrides, serde_json::json!({ key: v })),
                Some(_) => {
                    return Err(format!("{place}: `{key}` must be a mapping of config keys"));
                }
            }
        }
        tasks.push(Task {
            id: t.id,
            split: t.split,
            source,
            task: t.task,
            check: t.check,
            framework: t.framework,
            hidden_tests,
            setup: t.setup.filter(|s| !s.trim().is_empty()),
            dir: workdir,
            overrides,
        });
    }
    let name = raw.name.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "suite".into())
    });
    Ok(Suite {
        name,
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        hash: text_hash(text),
        tasks,
    })
}

/// Deep merge: mappings merge key by key, anything else replaces.
pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The settings one task runs with: `base` with the task's own settings merged over it,
/// validated like a config file. Unknown keys are errors here (a typo in a suite would
/// otherwise silently bench the wrong thing).
pub fn task_settings(base: &Settings, task: &Task) -> Result<Settings, String> {
    let place = format!("task {:?}", task.id);
    let overrides_empty = task.overrides.as_object().is_none_or(|o| o.is_empty());
    let mut settings = if overrides_empty {
        base.clone()
    } else {
        let mut value =
            serde_json::to_value(base).map_err(|e| format!("{place}: read the settings: {e}"))?;
        merge(&mut value, task.overrides.clone());
        let yaml = serde_saphyr::to_string(&value)
            .map_err(|e| format!("{place}: write the settings: {e}"))?;
        let (settings, warnings) = crate::settings::from_yaml_str(
            &yaml,
            Path::new(&format!("the settings of {place}")),
            &crate::settings::process_env,
        )
        .map_err(|e| e.to_string())?;
        if let Some(w) = warnings.first() {
            return Err(format!("{place}: {w}"));
        }
        settings
    };
    settings.tests.command = task.check.clone();
    if let Some(framework) = &task.framework {
        settings
            .apply(&crate::settings::Overrides {
                test_framework: Some(framework.clone()),
                ..Default::default()
            })
            .map_err(|e| format!("{place}: framework: {e}"))?;
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("p")).unwrap();
        std::fs::create_dir_all(dir.path().join("h")).unwrap();
        dir
    }

    #[test]
    fn a_suite_reads_with_its_defaults_and_overrides() {
        let dir = suite_dir();
        let text = r#"settings:
  learning: {max_retries: 0}
tasks:
  - id: a
    project: p
    task: Do it
    check: 'true'
    hidden_tests: h
  - id: b
    split: train
    repo: https://example.invalid/r.git
    rev: v1
    task: T
    check: make test
    agent: {kind: command, command: my-agent}
    teacher: {mode: offline}
"#;
        let s = parse(text, Path::new("s.yaml"), dir.path()).unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(s.tasks[0].split, Split::Test);
        assert_eq!(s.tasks[0].source, Source::Dir(dir.path().join("p")));
        assert_eq!(s.tasks[0].hidden_tests, Some(dir.path().join("h")));
        assert_eq!(s.tasks[1].split, Split::Train);
        assert_eq!(
            s.tasks[1].source,
            Source::Git {
                repo: "https://example.invalid/r.git".into(),
                rev: Some("v1".into())
            }
        );
        let settings = task_settings(&Settings::default(), &s.tasks[1]).unwrap();
        assert_eq!(settings.agent.kind.as_str(), "command");
        assert_eq!(settings.agent.command.as_deref(), Some("my-agent"));
        assert_eq!(settings.teacher.mode.as_str(), "offline");
        assert_eq!(settings.learning.max_retries, 0);
        assert_eq!(settings.tests.command, "make test");
        let plain = task_settings(&Settings::default(), &s.tasks[0]).unwrap();
        assert_eq!(plain.agent.kind.as_str(), "claude");
        assert_eq!(plain.learning.max_retries, 0);
    }

    #[test]
    fn mistakes_in_a_suite_are_named() {
        let dir = suite_dir();
        for (text, expected) in [
            ("tasks: []\n", "has no tasks"),
            (
                "tasks:\n  - id: a\n    task: T\n    check: c\n",
                "either `project`",
            ),
            (
                "tasks:\n  - id: a\n    project: nope\n    task: T\n    check: c\n",
                "is not a directory",
            ),
            (
                "tasks:\n  - {id: a, project: p, task: T, check: c}\n  - {id: a, project: p, task: T, check: c}\n",
                "used twice",
            ),
            (
                "tasks:\n  - {id: 'a b', project: p, task: T, check: c}\n",
                "letters, digits",
            ),
            (
                "tasks:\n  - {id: a, project: p, task: T, check: c, chek: d}\n",
                "s.yaml:2:",
            ),
            (
                "tasks:\n  - {id: a, project: p, task: T, check: ' '}\n",
                "`check` is empty",
            ),
        ] {
            let e = parse(text, Path::new("s.yaml"), dir.path()).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
        let typo = parse(
            "tasks:\n  - {id: a, project: p, task: T, check: c, agent: {kidn: codex}}\n",
            Path::new("s.yaml"),
            dir.path(),
        )
        .unwrap();
        let e = task_settings(&Settings::default(), &typo.tasks[0]).unwrap_err();
        assert!(e.contains("kidn"), "{e}");
    }
}
