//! One trial's private copy of a project: a temporary directory holding the project (a
//! fresh git repository, so the loop's snapshots work as in real use), the check command
//! wrapped so hidden tests are copied in for the check only, and the arm's rules rendered
//! into the agent's instruction files. The user's work tree is only ever read: a directory
//! is copied, a repository is cloned (a local clone reads it; nothing is written to it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::suite::Source;
use crate::agent::command::shell_quote;
use crate::learn::curate::Curator;
use crate::process::{self, CancelToken, ProcessSpec};
use crate::rules::file::{self as rules_file, ReplaceOutcome};
use crate::store::render::{self, Budget};
use crate::store::{RuleStore, Status, StoredRule};

/// A trial's directory; removed when dropped.
pub struct Workspace {
    root: tempfile::TempDir,
    /// The project copy (a git repository).
    pub project: PathBuf,
    /// Where the agent and the check work: the copy, or the task's `dir` inside it.
    pub workdir: PathBuf,
    /// What the loop runs as its test command: the check, with hidden tests around it.
    pub test_command: String,
    /// Time the set-up command took.
    pub setup: Duration,
}

impl Workspace {
    /// The trial's directory (the project copy is `project/` inside it).
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

/// Runs git with a fixed identity and none of the caller's repository variables.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=promptloop",
            "-c",
            "user.email=promptloop@localhost",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("run git {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes a trial's copy of `source` and its check command.
pub fn prepare(
    source: &Source,
    dir: Option<&Path>,
    hidden_tests: Option<&Path>,
    check: &str,
    setup: Option<&str>,
    setup_timeout: Duration,
    cancel: &CancelToken,
) -> Result<Workspace, String> {
    let root = tempfile::Builder::new()
        .prefix("promptloop-bench-")
        .tempdir()
        .map_err(|e| format!("create a trial directory: {e}"))?;
    let project = root.path().join("project");
    match source {
        Source::Dir(dir) => copy_project(dir, &project)?,
        Source::Git { repo, rev } => clone_project(repo, rev.as_deref(), &project)?,
    }
    let workdir = match dir {
        Some(d) => project.join(d),
        None => project.clone(),
    };
    if !workdir.is_dir() {
        return Err(format!(
            "{} is not a directory of the project",
            workdir.display()
        ));
    }
    let test_command = match hidden_tests {
        Some(hidden) => wrap_check(root.path(), hidden, check)?,
        None => check.to_string(),
    };
    let started = Instant::now();
    if let Some(setup) = setup {
        let out = process::run(&ProcessSpec::shell(setup, &workdir, setup_timeout), cancel)
            .map_err(|e| format!("run the set-up command: {e}"))?;
        if !out.exit.success() {
            let tail: Vec<&str> = out.stderr.lines().rev().take(5).collect();
            return Err(format!(
                "the set-up command `{setup}` failed ({}): {}",
                out.exit,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    Ok(Workspace {
        root,
        project,
        workdir,
        test_command,
        setup: started.elapsed(),
    })
}

/// Copies a directory into `to` and commits it in a new repository. Inside a git work tree
/// only what git would keep is copied (tracked and untracked files, not ignored ones: no
/// `target/` or `node_modules/`); elsewhere everything but `.git` and `.promptloop`.
fn copy_project(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    let listed = git(
        from,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    let files: Vec<PathBuf> = match listed {
        Ok(list) => list
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
        Err(_) => {
            let mut out = Vec::new();
            walk(from, Path::new(""), &mut out)?;
            out
        }
    };
    for rel in files {
        if rel
            .components()
            .any(|c| c.as_os_str() == ".git" || c.as_os_str() == crate::store::DIR_NAME)
        {
            continue;
        }
        copy_entry(&from.join(&rel), &to.join(&rel))?;
    }
    git(to, &["init", "-q"])?;
    git(to, &["add", "-A"])?;
    git(
        to,
        &[
            "commit",
            "-q",
            "--no-verify",
            "--allow-empty",
            "-m",
            "promptloop bench: the task's project",
        ],
    )?;
    Ok(())
}

/// Every file under `dir` (relative to the walk's start), `.git` and `.promptloop` left out.
fn walk(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let dir = base.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
        let name = entry.file_name();
        if name == ".git" || name == crate::store::DIR_NAME {
            continue;
        }
        let child = rel.join(&name);
        let kind = entry
            .file_type()
            .map_err(|e| format!("read {}: {e}", entry.path().display()))?;
        if kind.is_dir() {
            walk(base, &child, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

/// Copies one file or symlink (parents created); a listed file that is gone is skipped.
fn copy_entry(from: &Path, to: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(from) else {
        return Ok(());
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    if meta.file_type().is_symlink() {
        let target =
            std::fs::read_link(from).map_err(|e| format!("read {}: {e}", from.display()))?;
        std::os::unix::fs::symlink(&target, to)
            .map_err(|e| format!("link {}: {e}", to.display()))?;
    } else if meta.is_file() {
        std::fs::copy(from, to).map_err(|e| format!("copy {}: {e}", from.display()))?;
    }
    Ok(())
}

/// Clones `repo` into `to` and checks out `rev` (a commit, tag, branch or any ref; one the
/// clone did not bring is fetched by name), detached.
fn clone_project(repo: &str, rev: Option<&str>, to: &Path) -> Result<(), String> {
    let parent = to.parent().unwrap_or(Path::new("."));
    let dest = to.display().to_string();
    git(parent, &["clone", "-q", "--no-checkout", repo, &dest])?;
    let commit = match rev {
        None => "HEAD".to_string(),
        Some(rev) => {
            let wanted = format!("{rev}^{{commit}}");
            match git(to, &["rev-parse", "-q", "--verify", &wanted]) {
                Ok(sha) => sha.trim().to_string(),
                Err(_) => {
                    git(to, &["fetch", "-q", "--no-tags", "origin", rev])?;
                    git(to, &["rev-parse", "-q", "--verify", "FETCH_HEAD^{commit}"])?
                        .trim()
                        .to_string()
                }
            }
        }
    };
    git(to, &["checkout", "-q", "--detach", &commit])?;
    Ok(())
}

/// Writes `root/check.sh`: the hidden tests are put in place (a project file they replace
/// is moved aside), the check runs, and everything is put back, so the agent never sees
/// them. If the check is killed at its timeout the loop's own restore removes them.
fn wrap_check(root: &Path, hidden: &Path, check: &str) -> Result<String, String> {
    let mut files = Vec::new();
    walk(hidden, Path::new(""), &mut files)?;
    files.sort();
    let q = |p: &Path| shell_quote(&p.to_string_lossy());
    let mut script = String::from(
        "#!/bin/sh\n# promptloop bench: the check, with the task's hidden tests copied in for it only.\n",
    );
    script.push_str(&format!(
        "b={}\nh={}\n",
        q(&root.join("hidden-backup")),
        q(hidden)
    ));
    script.push_str(
        "put() { if [ -e \"$1\" ] || [ -L \"$1\" ]; then mkdir -p \"$b/$(dirname \"$1\")\" && mv \"$1\" \"$b/$1\"; fi; \
         mkdir -p \"$(dirname \"$1\")\" && cp -P \"$h/$1\" \"$1\"; }\n\
         back() { rm -f \"$1\"; if [ -e \"$b/$1\" ] || [ -L \"$b/$1\" ]; then mv \"$b/$1\" \"$1\"; fi; }\n",
    );
    for f in &files {
        script.push_str(&format!("put {}\n", q(f)));
    }
    script.push_str(&format!("sh -c {}\nrc=$?\n", shell_quote(check)));
    for f in &files {
        script.push_str(&format!("back {}\n", q(f)));
    }
    // Directories made for hidden files go again once empty (deepest first).
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .flat_map(|f| f.ancestors().skip(1).map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        script.push_str(&format!("rmdir {} 2>/dev/null\n", q(&d)));
    }
    script.push_str("exit $rc\n");
    let path = root.join("check.sh");
    std::fs::write(&path, script).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(format!("sh {}", q(&path)))
}

/// Renders `rules` into the instruction files `targets` of the project copy, through the
/// copy's own store, replacing whatever rules the copy's files held (the user's own text
/// in a section stays). An empty list leaves empty sections: the `none` arm.
pub fn install_rules(
    project: &Path,
    rules: &[StoredRule],
    targets: &[PathBuf],
    budget: Budget,
    arm: &str,
) -> Result<(), String> {
    let repo = crate::git::Repo::open(project).map_err(|e| e.to_string())?;
    repo.ensure_excluded(&format!("{}/", crate::store::DIR_NAME))
        .map_err(|e| e.to_string())?;
    let store = crate::store::open_project(project).map_err(|e| e.to_string())?;
    let curator = Curator {
        store: &store,
        project_dir: project.to_path_buf(),
        budget,
        review: false,
        judge: None,
        unproven_max_age_days: None,
    };
    let targets: Vec<_> = targets.iter().map(|t| curator.target(t)).collect();
    // Rules the copy's files already hold are not this arm's: keep only the user's text.
    for target in &targets {
        let snap = rules_file::read_section(&target.path).map_err(|e| e.to_string())?;
        if let Some(body) = &snap.body {
            let foreign = render::parse_body(body).foreign;
            let kept = if foreign.is_empty() {
                "\n".to_string()
            } else {
                format!("\n{}\n", foreign.join("\n"))
            };
            match rules_file::replace_section_body(&target.path, Some(body), &kept)
                .map_err(|e| e.to_string())?
            {
                ReplaceOutcome::Changed => {
                    return Err(format!(
                        "{} changed while it was read",
                        target.path.display()
                    ));
                }
                ReplaceOutcome::Written | ReplaceOutcome::Unchanged => {}
            }
        }
    }
    let keys: Vec<String> = targets.iter().map(|t| t.key.clone()).collect();
    for rule in rules {
        let mut copy = rule.clone();
        copy.targets = keys.clone();
        copy.status = Status::Active;
        store.insert(&copy).map_err(|e| e.to_string())?;
    }
    for target in &targets {
        curator
            .sync(target, &format!("bench arm {arm}"), &[])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The active rules of the copy's store that are not among `given` (what a trial learned).
pub fn learned_rules(project: &Path, given: &[StoredRule]) -> Result<Vec<StoredRule>, String> {
    let store = crate::store::open_project(project).map_err(|e| e.to_string())?;
    let rules = store
        .list(&crate::store::RuleFilter {
            statuses: vec![Status::Active],
            target: None,
        })
        .map_err(|e| e.to_string())?;
    Ok(rules
        .into_iter()
        .filter(|r| !given.iter().any(|g| g.id == r.id))
        .filter(|r| {
            // Rules folded in from the copy's files are not lessons of this trial.
            r.provenance
                .iter()
                .any(|p| p.failure_type != "imported" && p.failure_type != "hand_edit")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_tests_are_there_for_the_check_only() {
        let suite = tempfile::tempdir().unwrap();
        let project = suite.path().join("p");
        std::fs::create_dir_all(project.join("tests")).unwrap();
        std::fs::write(project.join("tests/visible.txt"), "visible\n").unwrap();
        std::fs::write(project.join("tests/shared.txt"), "the project's\n").unwrap();
        let hidden = suite.path().join("h");
        std::fs::create_dir_all(hidden.join("tests/deep")).unwrap();
        std::fs::write(hidden.join("tests/shared.txt"), "hidden\n").unwrap();
        std::fs::write(hidden.join("tests/deep/secret.txt"), "secret\n").unwrap();
        let ws = prepare(
            &Source::Dir(project.clone()),
            None,
            Some(&hidden),
            "cat tests/shared.txt tests/deep/secret.txt > seen.txt",
            Some("echo set-up > setup.txt"),
            Duration::from_secs(30),
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.project.join("tests/shared.txt")).unwrap(),
            "the project's\n"
        );
        assert!(!ws.project.join("tests/deep").exists());
        assert!(ws.project.join("setup.txt").exists());
        let out = process::run(
            &ProcessSpec::shell(&ws.test_command, &ws.project, Duration::from_secs(30)),
            &CancelToken::new(),
        )
        .unwrap();
        assert!(out.exit.success(), "{}", out.stderr);
        assert_eq!(
            std::fs::read_to_string(ws.project.join("seen.txt")).unwrap(),
            "hidden\nsecret\n"
        );
        // Put back: the project's file again, the hidden one and its directory gone.
        assert_eq!(
            std::fs::read_to_string(ws.project.join("tests/shared.txt")).unwrap(),
            "the project's\n"
        );
        assert!(!ws.project.join("tests/deep").exists());
        // The original project was only read.
        assert!(!project.join("seen.txt").exists() && !project.join(".git").exists());
        let root = ws.root().to_path_buf();
        drop(ws);
        assert!(!root.exists());
    }

    #[test]
    fn a_failing_check_keeps_its_exit_code_and_a_failing_setup_is_an_error() {
        let suite = tempfile::tempdir().unwrap();
        let hidden = suite.path().join("h");
        std::fs::create_dir_all(&hidden).unwrap();
        std::fs::write(hidden.join("t.txt"), "x").unwrap();
        let ws = prepare(
            &Source::Dir(suite.path().join("h")),
            None,
            Some(&hidden),
            "exit 3",
            None,
            Duration::from_secs(30),
            &CancelToken::new(),
        )
        .unwrap();
        let out = process::run(
            &ProcessSpec::shell(&ws.test_command, &ws.project, Duration::from_secs(30)),
            &CancelToken::new(),
        )
        .unwrap();
        assert_eq!(out.exit.to_string(), "exit code 3");
        // t.txt is part of the project too here: it is back after the check.
        assert!(ws.project.join("t.txt").exists());
        let e = prepare(
            &Source::Dir(hidden.clone()),
            None,
            None,
            "true",
            Some("echo broken >&2; exit 1"),
            Duration::from_secs(30),
            &CancelToken::new(),
        )
        .err()
        .unwrap();
        assert!(e.contains("set-up command") && e.contains("broken"), "{e}");
    }
}
