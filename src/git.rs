//! Work-tree snapshots that never touch the user's branch, HEAD, index or files.
//!
//! A snapshot is an ordinary commit whose tree is the whole work tree (tracked files as they
//! are on disk, deletions, and untracked-but-not-ignored files), stored under a private ref in
//! `refs/promptloop/`. It is built through a throw-away index file in a temporary directory,
//! so the user's real index is only ever read, never written. The only operation that writes
//! into the work tree is [`Repo::restore`], and it first snapshots the current state so that
//! nothing the agent (or the user) did is lost either.
//!
//! Git is always run as a subprocess (never libgit2) with a controlled environment; see
//! [`Repo`] for what every invocation sets.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Namespace that every ref written by this module must live in.
///
/// Refs here are invisible to `git branch`, `git tag`, `git stash list` and the user's
/// `git log`, yet keep the snapshot objects alive against `git gc`.
pub const PRIVATE_REF_PREFIX: &str = "refs/promptloop/";

/// Author and committer identity of snapshot commits, so that snapshots work on machines
/// where the user never configured `user.name`/`user.email`.
const IDENTITY: &str = "promptloop";

/// Inherited variables that would redirect our git calls to another repository, index or
/// object store (a hook or a wrapper may have exported them), or that conflict with the
/// literal pathspecs we force.
const STRIPPED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_GLOB_PATHSPECS",
    "GIT_NOGLOB_PATHSPECS",
    "GIT_ICASE_PATHSPECS",
    "GIT_LITERAL_PATHSPECS",
    "GIT_EXTERNAL_DIFF",
];

/// Errors from git operations; each message reads after "failed to …".
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` executable could not be started.
    #[error("run git: the `git` executable was not found on PATH; install git and try again")]
    GitMissing,
    /// The project directory is not inside a git work tree.
    #[error(
        "open a git repository at {}: it is not inside a git work tree; run `git init` there \
         or pass a project dir inside a git repository",
        path.display()
    )]
    NotARepository {
        /// The directory that was given.
        path: PathBuf,
    },
    /// A git command exited unsuccessfully.
    #[error("run `git {}`: {}", args.join(" "), stderr)]
    Command {
        /// The git arguments (without the `-c` options added to every call).
        args: Vec<String>,
        /// What git printed on stderr (or its exit status when it printed nothing).
        stderr: String,
    },
    /// A filesystem operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, e.g. "remove /repo/new.txt".
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A caller asked to write or delete a ref outside [`PRIVATE_REF_PREFIX`].
    #[error("write ref {name}: promptloop only writes refs under {PRIVATE_REF_PREFIX}")]
    ForeignRef {
        /// The rejected ref name.
        name: String,
    },
    /// After a restore the work tree still differs from the snapshot (e.g. a nested git
    /// repository we refuse to delete recursively, or a file the agent force-added to the
    /// real index while it is ignored).
    #[error(
        "restore the work tree: it now matches tree {actual}, not the snapshot tree {expected}; \
         the state before restoring is saved in {backup_ref}"
    )]
    RestoreIncomplete {
        /// Tree of the snapshot that was being restored.
        expected: String,
        /// Tree of the work tree after restoring.
        actual: String,
        /// Private ref holding the state from just before the restore.
        backup_ref: String,
    },
}

/// A git work tree, addressed through its top-level directory.
///
/// Every git invocation runs from the top level with: stdin null (unless we feed it a path
/// list), `GIT_OPTIONAL_LOCKS=0` so reads never refresh the user's index, `-c
/// core.quotepath=false`, `LC_ALL=C` (so errors can be recognised), an
/// explicit `promptloop` author/committer, and no inherited `GIT_DIR`/`GIT_INDEX_FILE`/
/// `GIT_WORK_TREE`.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    program: OsString,
}

/// A captured work-tree state: a commit under a private ref and its tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// Full hex id of the snapshot commit (its parent is HEAD, if HEAD existed).
    pub commit: String,
    /// Full hex id of the commit's tree, i.e. the captured work tree.
    pub tree: String,
}

/// How a path differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeStatus {
    /// Present only in the newer snapshot.
    Added,
    /// Present in both with different content, mode or type (file ↔ symlink).
    Modified,
    /// Present only in the older snapshot.
    Deleted,
}

/// One path that differs between two snapshots (rename detection is off, so a rename is a
/// `Deleted` plus an `Added`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangedPath {
    /// The kind of change.
    pub status: ChangeStatus,
    /// Path relative to the repository's top level.
    pub path: PathBuf,
}

/// Per-call options for [`Repo::run`].
#[derive(Default)]
struct Opts<'a> {
    /// Temporary index to use instead of the real one.
    index: Option<&'a Path>,
    /// Bytes to feed on stdin (stdin is null otherwise).
    input: Option<&'a [u8]>,
    /// Exit codes besides 0 that are not errors.
    also_ok: &'a [i32],
}

/// What a finished git call produced.
struct Output {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// An index file in a private temporary directory, deleted on drop.
struct TempIndex {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Repo {
    /// Opens the repository containing `dir` (which may be any subdirectory of the work
    /// tree); snapshots always cover the whole work tree from its top level.
    pub fn open(dir: &Path) -> Result<Repo, GitError> {
        Self::open_with_program(dir, OsStr::new("git"))
    }

    /// [`Repo::open`] with an explicit git executable (lets tests prove `GitMissing`).
    fn open_with_program(dir: &Path, program: &OsStr) -> Result<Repo, GitError> {
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(GitError::NotARepository {
                    path: dir.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(GitError::Io {
                    action: format!("read project directory {}", dir.display()),
                    source,
                });
            }
        }
        let args = ["rev-parse", "--show-toplevel"];
        let out = run_git(
            program,
            dir,
            &args,
            &Opts {
                also_ok: &[128],
                ..Opts::default()
            },
        )?;
        if out.code != 0 {
            // LC_ALL=C makes these messages stable; "must be run in a work tree" covers bare
            // repositories and running from inside `.git`.
            if out.stderr.contains("not a git repository")
                || out.stderr.contains("must be run in a work tree")
            {
                return Err(GitError::NotARepository {
                    path: dir.to_path_buf(),
                });
            }
            return Err(command_error(&args, &out.stderr, out.code));
        }
        let top = trim_newline(&out.stdout);
        if top.is_empty() {
            return Err(GitError::NotARepository {
                path: dir.to_path_buf(),
            });
        }
        Ok(Repo {
            root: bytes_to_path(top),
            program: program.to_os_string(),
        })
    }

    /// The top level of the work tree (`git rev-parse --show-toplevel`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The commit HEAD points at, or `None` on an unborn branch (fresh repository).
    pub fn head_commit(&self) -> Result<Option<String>, GitError> {
        self.resolve_commit("HEAD")
    }

    /// Captures the whole work tree (tracked files as on disk, deleted tracked files,
    /// untracked-but-not-ignored files) as a commit stored under `ref_name`, which must start
    /// with [`PRIVATE_REF_PREFIX`]. HEAD, the branch, the real index and the files are not
    /// modified.
    pub fn snapshot(&self, ref_name: &str, message: &str) -> Result<Snapshot, GitError> {
        check_private_ref(ref_name)?;
        let tree = self.worktree_tree()?;
        let head = self.head_commit()?;
        let mut args = vec!["commit-tree", "--no-gpg-sign"];
        if let Some(head) = &head {
            args.extend(["-p", head.as_str()]);
        }
        args.extend(["-m", message, tree.as_str()]);
        let commit = self.text(&args, &Opts::default())?;
        self.update_ref(ref_name, &commit)?;
        Ok(Snapshot { commit, tree })
    }

    /// Reads back a snapshot stored under `ref_name`, or `None` if the ref does not exist.
    pub fn resolve_snapshot(&self, ref_name: &str) -> Result<Option<Snapshot>, GitError> {
        let Some(commit) = self.resolve_commit(ref_name)? else {
            return Ok(None);
        };
        let tree = self.text(
            &["rev-parse", "--verify", &format!("{commit}^{{tree}}")],
            &Opts::default(),
        )?;
        Ok(Some(Snapshot { commit, tree }))
    }

    /// Unified diff from `from` to `to`: added and deleted files shown in full, mode changes
    /// as `old mode`/`new mode`, binary files as `Binary files … differ`. Rename detection is
    /// off so every change shows its full content. Plumbing (`diff-tree`) is used so the
    /// user's porcelain diff settings (noprefix, renames, external tools, textconv, colour)
    /// cannot change the format. Non-UTF-8 bytes are replaced.
    pub fn diff(&self, from: &Snapshot, to: &Snapshot) -> Result<String, GitError> {
        let out = self.run(
            &[
                "diff-tree",
                "-r",
                "-p",
                "--no-renames",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                &from.tree,
                &to.tree,
            ],
            &Opts::default(),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Paths that differ between two snapshots (empty when the agent changed nothing).
    /// A change of type (file ↔ symlink) or of mode counts as `Modified`.
    pub fn changed_paths(
        &self,
        from: &Snapshot,
        to: &Snapshot,
    ) -> Result<Vec<ChangedPath>, GitError> {
        if from.tree == to.tree {
            return Ok(Vec::new());
        }
        let out = self.run(
            &[
                "diff-tree",
                "-r",
                "-z",
                "--no-renames",
                "--name-status",
                &from.tree,
                &to.tree,
            ],
            &Opts::default(),
        )?;
        // -z output is "<status>\0<path>\0" repeated; paths are raw bytes.
        let mut fields = out.stdout.split(|&b| b == 0);
        let mut changes = Vec::new();
        while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
            let status = match status.first() {
                Some(b'A') => ChangeStatus::Added,
                Some(b'D') => ChangeStatus::Deleted,
                _ => ChangeStatus::Modified,
            };
            changes.push(ChangedPath {
                status,
                path: bytes_to_path(path),
            });
        }
        Ok(changes)
    }

    /// Makes every non-ignored path of the work tree exactly as in `target` again (content,
    /// executable bit, symlinks), without touching HEAD, the branch or the real index.
    ///
    /// First the current state is snapshotted under `backup_ref` (returned), so the restore
    /// itself loses nothing. Then files that differ are written from the target, files that
    /// exist now but not in the target are deleted (unless ignored; ignored files are never
    /// touched), directories emptied by those deletions are removed, and the result is
    /// checked against the target tree ([`GitError::RestoreIncomplete`] otherwise).
    pub fn restore(&self, target: &Snapshot, backup_ref: &str) -> Result<Snapshot, GitError> {
        check_private_ref(backup_ref)?;
        // Fail before changing anything if the target's tree is gone or bogus.
        self.text(
            &[
                "rev-parse",
                "--verify",
                &format!("{}^{{tree}}", target.tree),
            ],
            &Opts::default(),
        )?;
        let backup = self.snapshot(backup_ref, "promptloop: work tree before restore")?;
        if backup.tree == target.tree {
            return Ok(backup);
        }
        let changes = self.changed_paths(&backup, target)?;
        let (gone, write): (Vec<ChangedPath>, Vec<ChangedPath>) = changes
            .into_iter()
            .partition(|c| c.status == ChangeStatus::Deleted);

        // Write first, so that the target's .gitignore files are back in place before we ask
        // which leftovers are ignored (an agent that un-ignored a user's ignored file must not
        // get it deleted).
        if !write.is_empty() {
            let index = self.temp_index(false)?;
            let opts = Opts {
                index: Some(&index.path),
                ..Opts::default()
            };
            self.run(&["read-tree", &target.tree], &opts)?;
            // -f overwrites differing files and replaces directories/symlinks in the way; the
            // stat data from read-tree is empty, so every listed path is rewritten.
            let list = nul_list(write.iter().map(|c| c.path.as_path()));
            self.run(
                &["checkout-index", "-f", "-z", "--stdin"],
                &Opts {
                    index: Some(&index.path),
                    input: Some(&list),
                    ..Opts::default()
                },
            )?;
        }

        let mut candidates = Vec::new();
        for change in &gone {
            if self.deletable(&change.path)? {
                candidates.push(change.path.as_path());
            }
        }
        let ignored = self.ignored(&candidates)?;
        let mut removed = Vec::new();
        for path in candidates {
            if ignored.contains(&path) {
                continue;
            }
            let full = self.root.join(path);
            match fs::remove_file(&full) {
                Ok(()) => removed.push(path),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(GitError::Io {
                        action: format!("remove {}", full.display()),
                        source,
                    });
                }
            }
        }
        self.prune_empty_dirs(&removed);

        let actual = self.worktree_tree()?;
        if actual != target.tree {
            return Err(GitError::RestoreIncomplete {
                expected: target.tree.clone(),
                actual,
                backup_ref: backup_ref.to_string(),
            });
        }
        Ok(backup)
    }

    /// Points the private ref `name` at `commit` (creating it if needed).
    pub fn update_ref(&self, name: &str, commit: &str) -> Result<(), GitError> {
        check_private_ref(name)?;
        self.run(
            &["update-ref", "-m", "promptloop snapshot", name, commit],
            &Opts::default(),
        )?;
        Ok(())
    }

    /// Deletes the private ref `name`; deleting a ref that does not exist is not an error.
    pub fn delete_ref(&self, name: &str) -> Result<(), GitError> {
        check_private_ref(name)?;
        self.run(&["update-ref", "-d", name], &Opts::default())?;
        Ok(())
    }

    /// Deletes the private refs `names` (`git update-ref --stdin`, one transaction per
    /// 1,000 refs: a batch is deleted whole or not at all). Every name is checked before
    /// anything is deleted; one outside [`PRIVATE_REF_PREFIX`] refuses the whole call.
    /// A ref that does not exist is not an error.
    pub fn delete_refs(&self, names: &[String]) -> Result<(), GitError> {
        for name in names {
            check_private_ref(name)?;
            // A line break would start another instruction; git refuses such names anyway.
            if name.contains(['\n', '\r', '\0']) || name.contains(' ') {
                return Err(GitError::ForeignRef { name: name.clone() });
            }
        }
        for batch in names.chunks(1000) {
            let mut input = String::new();
            for name in batch {
                input.push_str("delete ");
                input.push_str(name);
                input.push('\n');
            }
            self.run(
                &["update-ref", "--stdin"],
                &Opts {
                    input: Some(input.as_bytes()),
                    ..Opts::default()
                },
            )?;
        }
        Ok(())
    }

    /// Bytes on disk of the objects reachable from the refs `from` but from no other ref
    /// and not from HEAD (`git rev-list --objects --disk-usage`): what `git gc` can free
    /// once those refs are gone and the objects expire. `None` when git cannot tell (older
    /// than 2.31).
    pub fn exclusive_disk_usage(&self, from: &[String]) -> Result<Option<u64>, GitError> {
        if from.is_empty() {
            return Ok(Some(0));
        }
        let leaving: HashSet<&str> = from.iter().map(String::as_str).collect();
        let all = self.run(&["for-each-ref", "--format=%(refname)"], &Opts::default())?;
        let mut input = String::new();
        for name in from {
            input.push_str(name);
            input.push('\n');
        }
        for name in String::from_utf8_lossy(&all.stdout).lines() {
            if !name.is_empty() && !leaving.contains(name) {
                input.push('^');
                input.push_str(name);
                input.push('\n');
            }
        }
        if self.head_commit()?.is_some() {
            input.push_str("^HEAD\n");
        }
        let out = self.run(
            &["rev-list", "--objects", "--disk-usage", "--stdin"],
            &Opts {
                input: Some(input.as_bytes()),
                also_ok: &[128, 129],
                ..Opts::default()
            },
        )?;
        if out.code != 0 {
            return Ok(None);
        }
        Ok(String::from_utf8_lossy(trim_newline(&out.stdout))
            .trim()
            .parse()
            .ok())
    }

    /// Full names of the refs under `prefix` (matched up to a `/`, as `git for-each-ref`
    /// does, e.g. `refs/promptloop/runs/<id>`), sorted by name.
    pub fn list_refs(&self, prefix: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(
            &["for-each-ref", "--format=%(refname)", prefix],
            &Opts::default(),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Appends `pattern` (e.g. `.promptloop/`) to the repository's `info/exclude` unless an
    /// identical line is already there. The user's `.gitignore` is never edited. Call this
    /// before snapshotting: an un-excluded data dir would be captured and, on restore,
    /// files created in it after the snapshot would be deleted.
    pub fn ensure_excluded(&self, pattern: &str) -> Result<(), GitError> {
        let path = self.git_path("info/exclude")?;
        let io_err = |action: &str, source| GitError::Io {
            action: format!("{action} {}", path.display()),
            source,
        };
        if pattern.trim().is_empty() || pattern.contains(['\n', '\r']) {
            return Err(io_err(
                "add a single-line pattern to",
                io::Error::new(io::ErrorKind::InvalidInput, "invalid exclude pattern"),
            ));
        }
        let existing = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(io_err("read", err)),
        };
        let present = existing
            .split(|&b| b == b'\n')
            .any(|line| line.strip_suffix(b"\r").unwrap_or(line) == pattern.as_bytes());
        if present {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err("create the directory of", e))?;
        }
        let mut text = Vec::new();
        if !existing.is_empty() && !existing.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(pattern.as_bytes());
        text.push(b'\n');
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(&text))
            .map_err(|e| io_err("append to", e))
    }

    /// Tree id of the current work tree, computed through a temporary index seeded from the
    /// real one (so unchanged files are not re-hashed).
    fn worktree_tree(&self) -> Result<String, GitError> {
        let index = self.temp_index(true)?;
        let opts = Opts {
            index: Some(&index.path),
            ..Opts::default()
        };
        self.run(&["add", "-A"], &opts)?;
        self.text(&["write-tree"], &opts)
    }

    /// A fresh index file outside the work tree; with `seed`, a copy of the real index.
    fn temp_index(&self, seed: bool) -> Result<TempIndex, GitError> {
        let dir = tempfile::Builder::new()
            .prefix("promptloop-index-")
            .tempdir()
            .map_err(|source| GitError::Io {
                action: "create a temporary directory".to_string(),
                source,
            })?;
        let path = dir.path().join("index");
        if seed {
            // --git-path handles linked worktrees and submodules, where the index is not
            // <root>/.git/index.
            let real = self.git_path("index")?;
            match fs::metadata(&real) {
                Ok(meta) => copy_index(&real, &path, &meta)?,
                // Fresh repository with nothing staged yet: start from an empty index.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(GitError::Io {
                        action: format!("read {}", real.display()),
                        source,
                    });
                }
            }
        }
        Ok(TempIndex { _dir: dir, path })
    }

    /// Absolute form of `git rev-parse --git-path <name>`.
    fn git_path(&self, name: &str) -> Result<PathBuf, GitError> {
        let out = self.run(&["rev-parse", "--git-path", name], &Opts::default())?;
        // The answer is relative to our cwd (the top level) unless already absolute.
        Ok(self.root.join(bytes_to_path(trim_newline(&out.stdout))))
    }

    /// The commit `rev` names, or `None` if it does not resolve.
    fn resolve_commit(&self, rev: &str) -> Result<Option<String>, GitError> {
        let out = self.run(
            &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")],
            &Opts {
                also_ok: &[1],
                ..Opts::default()
            },
        )?;
        if out.code != 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(trim_newline(&out.stdout)).into_owned(),
        ))
    }

    /// Whether `rel` is a file or symlink we may delete: it exists and no leading component
    /// is a symlink or non-directory (deleting through a symlinked directory would remove a
    /// file outside the work tree).
    fn deletable(&self, rel: &Path) -> Result<bool, GitError> {
        let mut current = self.root.clone();
        let mut components = rel.components().peekable();
        while let Some(component) = components.next() {
            current.push(component);
            let meta = match fs::symlink_metadata(&current) {
                Ok(meta) => meta,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(false);
                }
                Err(source) => {
                    return Err(GitError::Io {
                        action: format!("inspect {}", current.display()),
                        source,
                    });
                }
            };
            let last = components.peek().is_none();
            if last {
                // A directory here was recreated by the target (or is a nested repository):
                // never delete directories recursively.
                return Ok(!meta.is_dir());
            }
            if !meta.is_dir() || meta.file_type().is_symlink() {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// The subset of `paths` that the (restored) ignore rules exclude.
    fn ignored<'p>(&self, paths: &[&'p Path]) -> Result<HashSet<&'p Path>, GitError> {
        if paths.is_empty() {
            return Ok(HashSet::new());
        }
        // "./" keeps a name starting with ':' from being parsed as pathspec magic
        // (check-ignore refuses GIT_LITERAL_PATHSPECS). Verbose + non-matching output gives
        // one record per input, in order, so no path has to be parsed back.
        let mut list = Vec::new();
        for path in paths {
            list.extend_from_slice(b"./");
            list.extend_from_slice(&path_to_bytes(path));
            list.push(0);
        }
        let out = self.run(
            &["check-ignore", "--no-index", "-v", "-n", "-z", "--stdin"],
            &Opts {
                input: Some(&list),
                also_ok: &[1], // 1 = nothing ignored
                ..Opts::default()
            },
        )?;
        // Records are <source>\0<line>\0<pattern>\0<path>\0; an empty source means no
        // pattern matched, and a matching "!pattern" re-includes the path.
        let fields: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        let records: Vec<&[&[u8]]> = fields.chunks_exact(4).collect();
        if records.len() != paths.len() {
            return Err(command_error(
                &["check-ignore"],
                &format!("expected {} records, got {}", paths.len(), records.len()),
                out.code,
            ));
        }
        Ok(paths
            .iter()
            .zip(records)
            .filter(|(_, rec)| !rec[0].is_empty() && !rec[2].starts_with(b"!"))
            .map(|(path, _)| *path)
            .collect())
    }

    /// Removes directories that deleting `removed` left empty, walking up to (never
    /// including) the top level. Failures are expected (non-empty directories) and ignored.
    fn prune_empty_dirs(&self, removed: &[&Path]) {
        for path in removed {
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d.as_os_str().is_empty() || fs::remove_dir(self.root.join(d)).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
    }

    /// Runs git in the top level; see [`Repo`] for the environment.
    fn run(&self, args: &[&str], opts: &Opts<'_>) -> Result<Output, GitError> {
        run_git(&self.program, &self.root, args, opts)
    }

    /// Runs git and returns its stdout without the trailing newline.
    fn text(&self, args: &[&str], opts: &Opts<'_>) -> Result<String, GitError> {
        let out = self.run(args, opts)?;
        Ok(String::from_utf8_lossy(trim_newline(&out.stdout)).into_owned())
    }
}

/// Runs one git command with the controlled environment described on [`Repo`].
fn run_git(
    program: &OsStr,
    cwd: &Path,
    args: &[&str],
    opts: &Opts<'_>,
) -> Result<Output, GitError> {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd)
        .args(["-c", "core.quotepath=false"])
        // A split index would make git write shared index files next to the real index.
        .args(["-c", "core.splitIndex=false"])
        .args(["-c", "advice.addEmbeddedRepo=false"])
        .args(args)
        .stdin(if opts.input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in STRIPPED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("GIT_AUTHOR_NAME", IDENTITY)
        .env("GIT_AUTHOR_EMAIL", IDENTITY)
        .env("GIT_COMMITTER_NAME", IDENTITY)
        .env("GIT_COMMITTER_EMAIL", IDENTITY);
    if let Some(index) = opts.index {
        cmd.env("GIT_INDEX_FILE", index);
    }
    let mut child = cmd.spawn().map_err(|source| {
        // NotFound also means a vanished cwd; only blame git when the directory is there.
        if source.kind() == io::ErrorKind::NotFound && cwd.is_dir() {
            GitError::GitMissing
        } else {
            GitError::Io {
                action: format!("run git in {}", cwd.display()),
                source,
            }
        }
    })?;
    let (output, written) = match (child.stdin.take(), opts.input) {
        (Some(mut stdin), Some(input)) => std::thread::scope(|scope| {
            // Feed stdin from another thread: git may fill its stdout pipe before it has
            // read all of its input, and stdout is only drained by wait_with_output.
            let writer = scope.spawn(move || stdin.write_all(input));
            let output = child.wait_with_output();
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("stdin writer panicked")));
            (output, written)
        }),
        _ => (child.wait_with_output(), Ok(())),
    };
    let output = output.map_err(|source| GitError::Io {
        action: format!("wait for `git {}`", args.join(" ")),
        source,
    })?;
    let code = output.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    if code != 0 && !opts.also_ok.contains(&code) {
        return Err(command_error(args, &stderr, code));
    }
    // A short write with a successful exit would mean git acted on a partial path list.
    if let Err(source) = written {
        return Err(GitError::Io {
            action: format!("write the input of `git {}`", args.join(" ")),
            source,
        });
    }
    Ok(Output {
        code,
        stdout: output.stdout,
        stderr,
    })
}

/// Builds a [`GitError::Command`], falling back to the exit code when stderr is empty.
fn command_error(args: &[&str], stderr: &str, code: i32) -> GitError {
    GitError::Command {
        args: args.iter().map(|a| a.to_string()).collect(),
        stderr: if stderr.is_empty() {
            format!("exited with status {code}")
        } else {
            stderr.to_string()
        },
    }
}

/// Copies the real index, keeping its modification time: git trusts cached stat data only
/// for files older than the index file ("racy git"), so a fresh mtime on the copy could make
/// `git add` skip a file modified in the same instant the real index was written.
fn copy_index(real: &Path, copy: &Path, meta: &fs::Metadata) -> Result<(), GitError> {
    let io_err = |source| GitError::Io {
        action: format!("copy {} to {}", real.display(), copy.display()),
        source,
    };
    fs::copy(real, copy).map_err(io_err)?;
    let mtime = meta.modified().map_err(io_err)?;
    fs::OpenOptions::new()
        .write(true)
        .open(copy)
        .and_then(|file| file.set_modified(mtime))
        .map_err(io_err)
}

/// Rejects refs outside [`PRIVATE_REF_PREFIX`], so a caller bug can never move a branch,
/// a tag or HEAD.
fn check_private_ref(name: &str) -> Result<(), GitError> {
    match name.strip_prefix(PRIVATE_REF_PREFIX) {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(GitError::ForeignRef {
            name: name.to_string(),
        }),
    }
}

/// NUL-terminated list of paths, the form `-z --stdin` commands read.
fn nul_list<'a>(paths: impl Iterator<Item = &'a Path>) -> Vec<u8> {
    let mut list = Vec::new();
    for path in paths {
        list.extend_from_slice(&path_to_bytes(path));
        list.push(0);
    }
    list
}

/// Strips one trailing newline (not other whitespace: paths may end in spaces).
fn trim_newline(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// Git paths are raw bytes; on Unix they map to paths losslessly.
#[cfg(unix)]
fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// Git paths are UTF-8 on Windows.
#[cfg(not(unix))]
fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Inverse of [`bytes_to_path`].
#[cfg(unix)]
fn path_to_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

/// Inverse of [`bytes_to_path`], with git's `/` separators.
#[cfg(not(unix))]
fn path_to_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().replace('\\', "/").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    #[cfg(unix)]
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// Runs the test's own git (hermetic: no global/system config) and returns the output.
    fn git_out(dir: &Path, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("git");
        cmd.current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_AUTHOR_NAME", "User")
            .env("GIT_AUTHOR_EMAIL", "user@example.com")
            .env("GIT_COMMITTER_NAME", "User")
            .env("GIT_COMMITTER_EMAIL", "user@example.com");
        for var in STRIPPED_ENV {
            cmd.env_remove(var);
        }
        cmd.output().unwrap()
    }

    /// Runs git and insists it succeeds; returns stdout.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = git_out(dir, args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn init_repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["-c", "init.defaultBranch=main", "init", "-q"]);
        dir
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    #[cfg(unix)]
    fn set_exec(root: &Path, rel: &str, exec: bool) {
        let mode = if exec { 0o755 } else { 0o644 };
        fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Entry {
        File { bytes: Vec<u8>, mode: u32 },
        Dir,
        Symlink(PathBuf),
    }

    fn mode_of(meta: &fs::Metadata) -> u32 {
        #[cfg(unix)]
        return meta.permissions().mode();
        #[cfg(not(unix))]
        return u32::from(meta.permissions().readonly());
    }

    /// Every path under `root` except `.git`, with bytes, mode and symlink targets.
    fn files(root: &Path) -> BTreeMap<PathBuf, Entry> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                if rel == Path::new(".git") {
                    continue;
                }
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.file_type().is_symlink() {
                    out.insert(rel, Entry::Symlink(fs::read_link(&path).unwrap()));
                } else if meta.is_dir() {
                    out.insert(rel, Entry::Dir);
                    walk(root, &path, out);
                } else {
                    let bytes = fs::read(&path).unwrap();
                    out.insert(
                        rel,
                        Entry::File {
                            bytes,
                            mode: mode_of(&meta),
                        },
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    /// Everything of the user's that must survive snapshot and restore unchanged.
    #[derive(Debug, PartialEq, Eq)]
    struct UserState {
        head_ref: Vec<u8>,
        head: Vec<u8>,
        index: Option<Vec<u8>>,
        cached_diff: String,
        branches: String,
        user_refs: String,
        stash: String,
        log: Vec<u8>,
        files: BTreeMap<PathBuf, Entry>,
    }

    fn capture(root: &Path) -> UserState {
        let index_path = root.join(git(root, &["rev-parse", "--git-path", "index"]).trim_end());
        UserState {
            // Raw index bytes first, before any other git call could think of refreshing it.
            index: fs::read(index_path).ok(),
            head_ref: git_out(root, &["symbolic-ref", "-q", "HEAD"]).stdout,
            head: git_out(root, &["rev-parse", "-q", "--verify", "HEAD"]).stdout,
            cached_diff: git(root, &["diff", "--cached", "--no-color"]),
            branches: git(root, &["branch", "--list", "-a", "-vv"]),
            user_refs: git(
                root,
                &["for-each-ref", "refs/heads", "refs/tags", "refs/stash"],
            ),
            stash: git(root, &["stash", "list"]),
            log: git_out(root, &["log", "--format=%H %s"]).stdout,
            files: files(root),
        }
    }

    /// Builds the scenario from the brief: a recent commit, a stash, a staged change, an
    /// unstaged change, untracked and ignored files, plus unicode/space/newline names, an
    /// executable and a symlink.
    fn rich_repo() -> tempfile::TempDir {
        let dir = init_repo();
        let root = dir.path();
        write(root, ".gitignore", b"*.log\n__pycache__/\n");
        write(root, "README.md", b"# project\n");
        write(root, "src/main.py", b"print('hi')\n");
        write(root, "run.sh", b"#!/bin/sh\necho run\n");
        write(
            root,
            "data/\u{fc}n\u{ef}c\u{f6}d\u{e9} file.txt",
            b"unicode\n",
        );
        write(root, "old.txt", b"old\n");
        write(root, "staged.txt", b"staged v1\n");
        #[cfg(unix)]
        {
            set_exec(root, "run.sh", true);
            symlink("README.md", root.join("link")).unwrap();
        }
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "first"]);
        write(root, "README.md", b"# project\n\nrecent\n");
        git(root, &["commit", "-q", "-am", "recent commit"]);
        write(root, "README.md", b"stashed work\n");
        git(root, &["stash", "push", "-q", "-m", "user stash"]);
        write(root, "staged.txt", b"staged v2\n");
        write(root, "new_staged.txt", b"brand new, staged\n");
        git(root, &["add", "staged.txt", "new_staged.txt"]);
        write(root, "src/main.py", b"print('unstaged edit')\n");
        write(root, "notes/todo list.txt", b"untracked\n");
        #[cfg(unix)]
        write(root, "weird\nname.txt", b"newline in name\n");
        write(root, "debug.log", b"ignored\n");
        write(root, "__pycache__/main.pyc", b"\x00\x01ignored");
        dir
    }

    #[test]
    fn restore_after_agent_changes_puts_back_exactly_the_user_state() {
        let dir = rich_repo();
        let root = dir.path();
        let repo = Repo::open(root).unwrap();
        repo.ensure_excluded(".promptloop/").unwrap();
        write(root, ".promptloop/state.json", b"{}\n");
        let before = capture(root);

        let s1 = repo
            .snapshot("refs/promptloop/runs/r1/attempt-1/before", "before")
            .unwrap();
        assert_eq!(capture(root), before, "snapshot must not change anything");

        // The "agent".
        write(root, "README.md", b"agent rewrote this\n");
        write(root, "staged.txt", b"agent edit of a staged file\n");
        fs::remove_file(root.join("old.txt")).unwrap();
        fs::remove_file(root.join("data/\u{fc}n\u{ef}c\u{f6}d\u{e9} file.txt")).unwrap();
        fs::remove_dir(root.join("data")).unwrap();
        write(root, "newdir/deep/new file.txt", b"hello from the agent\n");
        write(root, "newdir/blob.bin", b"\x00\x9f\x92\x96\x00\x01");
        write(root, "notes/todo list.txt", b"changed\n");
        write(root, "agent.log", b"ignored, made by the agent\n");
        write(root, "__pycache__/new.pyc", b"\x00");
        write(root, ".promptloop/state.json", b"{\"attempt\": 1}\n");
        #[cfg(unix)]
        {
            set_exec(root, "run.sh", false);
            set_exec(root, "src/main.py", true);
            fs::remove_file(root.join("link")).unwrap();
            symlink("old.txt", root.join("link")).unwrap();
            fs::remove_file(root.join("weird\nname.txt")).unwrap();
        }

        let s2 = repo
            .snapshot("refs/promptloop/runs/r1/attempt-1/after", "after")
            .unwrap();
        let changed: BTreeMap<PathBuf, ChangeStatus> = repo
            .changed_paths(&s1, &s2)
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.status))
            .collect();
        let mut expected: BTreeMap<PathBuf, ChangeStatus> = [
            ("README.md", ChangeStatus::Modified),
            ("staged.txt", ChangeStatus::Modified),
            ("notes/todo list.txt", ChangeStatus::Modified),
            ("old.txt", ChangeStatus::Deleted),
            (
                "data/\u{fc}n\u{ef}c\u{f6}d\u{e9} file.txt",
                ChangeStatus::Deleted,
            ),
            ("newdir/deep/new file.txt", ChangeStatus::Added),
            ("newdir/blob.bin", ChangeStatus::Added),
        ]
        .into_iter()
        .map(|(p, s)| (PathBuf::from(p), s))
        .collect();
        #[cfg(unix)]
        expected.extend(
            [
                ("run.sh", ChangeStatus::Modified),
                ("src/main.py", ChangeStatus::Modified),
                ("link", ChangeStatus::Modified),
                ("weird\nname.txt", ChangeStatus::Deleted),
            ]
            .into_iter()
            .map(|(p, s)| (PathBuf::from(p), s)),
        );
        assert_eq!(changed, expected);

        let diff = repo.diff(&s1, &s2).unwrap();
        // Git appends a tab to ---/+++ names containing spaces (for GNU patch).
        assert!(
            diff.contains("+++ b/newdir/deep/new file.txt\t\n"),
            "{diff}"
        );
        assert!(diff.contains("+hello from the agent\n"), "{diff}");
        assert!(
            diff.contains("Binary files /dev/null and b/newdir/blob.bin differ"),
            "{diff}"
        );
        assert!(diff.contains("deleted file mode 100644\n"), "{diff}");
        assert!(diff.contains("-old\n"), "{diff}");
        #[cfg(unix)]
        assert!(
            diff.contains("old mode 100755\nnew mode 100644\n"),
            "{diff}"
        );

        let backup = repo
            .restore(&s1, "refs/promptloop/runs/r1/attempt-1/restore-backup")
            .unwrap();
        assert_eq!(backup.tree, s2.tree, "backup holds the agent's work");

        // Ignored files are left alone, including the ones the agent made.
        assert_eq!(
            fs::read(root.join("agent.log")).unwrap(),
            b"ignored, made by the agent\n"
        );
        assert!(root.join("__pycache__/new.pyc").exists());
        assert_eq!(
            fs::read(root.join(".promptloop/state.json")).unwrap(),
            b"{\"attempt\": 1}\n"
        );
        fs::remove_file(root.join("agent.log")).unwrap();
        fs::remove_file(root.join("__pycache__/new.pyc")).unwrap();
        write(root, ".promptloop/state.json", b"{}\n");

        assert_eq!(capture(root), before);
        assert_eq!(
            repo.resolve_snapshot("refs/promptloop/runs/r1/attempt-1/before")
                .unwrap(),
            Some(s1)
        );
    }

    #[test]
    fn restoring_an_unchanged_tree_rewrites_nothing() {
        let dir = rich_repo();
        let root = dir.path();
        let repo = Repo::open(root).unwrap();
        let s = repo.snapshot("refs/promptloop/t/before", "before").unwrap();
        let mtimes = |root: &Path| -> BTreeMap<PathBuf, std::time::SystemTime> {
            files(root)
                .into_keys()
                .map(|p| {
                    let t = fs::symlink_metadata(root.join(&p))
                        .unwrap()
                        .modified()
                        .unwrap();
                    (p, t)
                })
                .collect()
        };
        let before = capture(root);
        let times = mtimes(root);
        let again = repo.snapshot("refs/promptloop/t/after", "after").unwrap();
        assert_eq!(again.tree, s.tree);
        assert!(repo.changed_paths(&s, &again).unwrap().is_empty());
        assert!(repo.diff(&s, &again).unwrap().is_empty());
        let backup = repo.restore(&s, "refs/promptloop/t/backup").unwrap();
        assert_eq!(backup.tree, s.tree);
        assert_eq!(capture(root), before);
        assert_eq!(mtimes(root), times);
    }

    #[test]
    fn unborn_head_without_index_works_and_stays_unborn() {
        let dir = init_repo();
        let root = dir.path();
        write(root, "a.txt", b"a\n");
        let repo = Repo::open(root).unwrap();
        let index = root.join(".git/index");
        assert!(!index.exists());
        let s0 = repo.snapshot("refs/promptloop/u/0", "no index").unwrap();
        assert!(!index.exists(), "snapshot must not create the real index");
        assert_eq!(repo.head_commit().unwrap(), None);
        // No parent: rev-list prints only the commit itself.
        let parents = git(root, &["rev-list", "--parents", "-n", "1", &s0.commit]);
        assert_eq!(parents.trim(), s0.commit);

        write(root, "b.txt", b"staged\n");
        git(root, &["add", "b.txt"]);
        let before = capture(root);
        let s1 = repo.snapshot("refs/promptloop/u/1", "staged").unwrap();
        write(root, "a.txt", b"agent\n");
        fs::remove_file(root.join("b.txt")).unwrap();
        write(root, "c/d.txt", b"new\n");
        repo.restore(&s1, "refs/promptloop/u/backup").unwrap();
        assert_eq!(capture(root), before);
        assert!(
            !git_out(root, &["rev-parse", "--verify", "-q", "HEAD"])
                .status
                .success()
        );
        assert_eq!(
            git(root, &["symbolic-ref", "HEAD"]).trim(),
            "refs/heads/main"
        );
    }

    #[test]
    fn project_dir_in_a_subdirectory_covers_the_whole_work_tree() {
        let dir = init_repo();
        let root = dir.path();
        write(root, "top.txt", b"top\n");
        write(root, "sub/inner.txt", b"inner\n");
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "init"]);
        let repo = Repo::open(&root.join("sub")).unwrap();
        assert_eq!(repo.root(), fs::canonicalize(root).unwrap());
        let before = capture(root);
        let s1 = repo.snapshot("refs/promptloop/s/1", "1").unwrap();
        write(root, "top.txt", b"changed outside the project dir\n");
        write(root, "sub/new.txt", b"new\n");
        let s2 = repo.snapshot("refs/promptloop/s/2", "2").unwrap();
        let mut changed = repo.changed_paths(&s1, &s2).unwrap();
        changed.sort();
        assert_eq!(
            changed,
            vec![
                ChangedPath {
                    status: ChangeStatus::Added,
                    path: "sub/new.txt".into()
                },
                ChangedPath {
                    status: ChangeStatus::Modified,
                    path: "top.txt".into()
                },
            ]
        );
        repo.restore(&s1, "refs/promptloop/s/backup").unwrap();
        assert_eq!(capture(root), before);
    }

    #[test]
    fn diff_shows_new_untracked_file_content() {
        let dir = init_repo();
        let root = dir.path();
        write(root, "kept.txt", b"kept\n");
        let repo = Repo::open(root).unwrap();
        let s1 = repo.snapshot("refs/promptloop/d/1", "1").unwrap();
        write(root, "fresh.txt", b"line one\nline two\n");
        let s2 = repo.snapshot("refs/promptloop/d/2", "2").unwrap();
        let diff = repo.diff(&s1, &s2).unwrap();
        assert!(
            diff.starts_with("diff --git a/fresh.txt b/fresh.txt\n"),
            "{diff}"
        );
        assert!(diff.contains("new file mode 100644\n"), "{diff}");
        assert!(diff.contains("+line one\n+line two\n"), "{diff}");
        assert!(!diff.contains("kept"), "{diff}");
    }

    #[test]
    fn refs_stay_private_and_foreign_refs_are_refused() {
        let dir = rich_repo();
        let root = dir.path();
        let repo = Repo::open(root).unwrap();
        let before = capture(root);
        let s = repo
            .snapshot("refs/promptloop/runs/x/attempt-1/before", "snap")
            .unwrap();
        assert_eq!(
            capture(root),
            before,
            "branch, log, stash and refs unchanged"
        );
        assert!(!git(root, &["log", "--format=%H", "main"]).contains(&s.commit));
        assert!(!git(root, &["branch", "-a"]).contains("promptloop"));
        assert_eq!(
            repo.list_refs("refs/promptloop/runs/x").unwrap(),
            vec!["refs/promptloop/runs/x/attempt-1/before".to_string()]
        );
        // The snapshot's parent is the user's HEAD, so its diff against HEAD is meaningful.
        let head = repo.head_commit().unwrap().unwrap();
        assert_eq!(
            git(root, &["rev-parse", &format!("{}^", s.commit)]).trim(),
            head
        );

        for name in ["refs/heads/main", "HEAD", "refs/promptloop/", "refs/stash"] {
            assert!(matches!(
                repo.snapshot(name, "x"),
                Err(GitError::ForeignRef { .. })
            ));
            assert!(matches!(
                repo.update_ref(name, &s.commit),
                Err(GitError::ForeignRef { .. })
            ));
            assert!(matches!(
                repo.delete_ref(name),
                Err(GitError::ForeignRef { .. })
            ));
            assert!(matches!(
                repo.restore(&s, name),
                Err(GitError::ForeignRef { .. })
            ));
        }
        assert_eq!(capture(root), before);

        repo.delete_ref("refs/promptloop/runs/x/attempt-1/before")
            .unwrap();
        repo.delete_ref("refs/promptloop/runs/x/never-existed")
            .unwrap();
        assert!(repo.list_refs("refs/promptloop").unwrap().is_empty());
        assert_eq!(
            repo.resolve_snapshot("refs/promptloop/runs/x/attempt-1/before")
                .unwrap(),
            None
        );
    }

    #[test]
    fn delete_refs_removes_private_refs_in_one_call_and_refuses_any_other() {
        let dir = rich_repo();
        let root = dir.path();
        let repo = Repo::open(root).unwrap();
        let before = capture(root);
        let names: Vec<String> = (0..5)
            .map(|i| format!("refs/promptloop/runs/r{i}/attempt-1/before"))
            .collect();
        let s = repo.snapshot(&names[0], "snap").unwrap();
        for name in &names[1..] {
            repo.update_ref(name, &s.commit).unwrap();
        }
        // The snapshot's own objects are counted; what HEAD reaches is not.
        let usage = repo.exclusive_disk_usage(&names).unwrap();
        assert!(usage.is_some_and(|n| n > 0), "{usage:?}");
        // One foreign name refuses the whole call before anything is deleted.
        let mut mixed = names.clone();
        mixed.push("refs/heads/main".to_string());
        assert!(matches!(
            repo.delete_refs(&mixed),
            Err(GitError::ForeignRef { .. })
        ));
        assert_eq!(repo.list_refs("refs/promptloop/runs").unwrap().len(), 5);
        let mut gone = names.clone();
        gone.push("refs/promptloop/runs/never/existed".to_string());
        repo.delete_refs(&gone[..3]).unwrap();
        assert_eq!(
            repo.list_refs("refs/promptloop/runs").unwrap(),
            names[3..].to_vec()
        );
        repo.delete_refs(&gone[3..]).unwrap();
        assert!(repo.list_refs("refs/promptloop").unwrap().is_empty());
        assert_eq!(
            capture(root),
            before,
            "branch, log, stash and refs unchanged"
        );
    }

    #[test]
    fn ensure_excluded_is_idempotent_and_keeps_gitignore() {
        let dir = init_repo();
        let root = dir.path();
        let exclude = root.join(".git/info/exclude");
        fs::write(&exclude, b"# user line without newline").unwrap();
        let repo = Repo::open(root).unwrap();
        repo.ensure_excluded(".promptloop/").unwrap();
        repo.ensure_excluded(".promptloop/").unwrap();
        assert_eq!(
            fs::read_to_string(&exclude).unwrap(),
            "# user line without newline\n.promptloop/\n"
        );
        assert!(!root.join(".gitignore").exists());
        assert!(repo.ensure_excluded("a\nb").is_err());

        fs::remove_file(&exclude).unwrap();
        repo.ensure_excluded(".promptloop/").unwrap();
        assert_eq!(fs::read_to_string(&exclude).unwrap(), ".promptloop/\n");

        write(root, ".promptloop/log.txt", b"ours\n");
        write(root, "user.txt", b"user\n");
        let s = repo.snapshot("refs/promptloop/e/1", "1").unwrap();
        let names = git(root, &["ls-tree", "-r", "--name-only", &s.tree]);
        assert_eq!(names, "user.txt\n");
    }

    #[test]
    fn open_reports_missing_repository_git_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = Repo::open(dir.path()).unwrap_err();
        assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
        assert!(err.to_string().contains("git init"), "{err}");

        let err =
            Repo::open_with_program(dir.path(), OsStr::new("promptloop-no-such-git")).unwrap_err();
        assert!(matches!(err, GitError::GitMissing), "{err}");
        assert!(err.to_string().contains("install git"), "{err}");

        let err = Repo::open(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, GitError::Io { .. }), "{err}");

        let bare = tempfile::tempdir().unwrap();
        git(bare.path(), &["init", "-q", "--bare"]);
        let err = Repo::open(bare.path()).unwrap_err();
        assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
    }

    #[test]
    fn agent_unignoring_a_user_file_does_not_get_it_deleted() {
        let dir = init_repo();
        let root = dir.path();
        write(root, ".gitignore", b"secret.env\n");
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "init"]);
        write(root, "secret.env", b"TOKEN=user-data\n");
        let repo = Repo::open(root).unwrap();
        let before = capture(root);
        let s1 = repo.snapshot("refs/promptloop/i/1", "1").unwrap();
        write(root, ".gitignore", b"");
        repo.restore(&s1, "refs/promptloop/i/backup").unwrap();
        assert_eq!(capture(root), before);
    }

    #[cfg(unix)]
    #[test]
    fn restore_never_deletes_through_a_symlinked_directory() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "victim.txt", b"outside the repo\n");
        let dir = init_repo();
        let root = dir.path();
        symlink(outside.path(), root.join("a")).unwrap();
        let repo = Repo::open(root).unwrap();
        let before = capture(root);
        let s1 = repo.snapshot("refs/promptloop/l/1", "1").unwrap();
        // The agent replaces the symlink with a real directory holding a same-named file.
        fs::remove_file(root.join("a")).unwrap();
        write(root, "a/victim.txt", b"agent\n");
        repo.restore(&s1, "refs/promptloop/l/backup").unwrap();
        assert_eq!(capture(root), before);
        assert_eq!(
            fs::read(outside.path().join("victim.txt")).unwrap(),
            b"outside the repo\n"
        );
    }

    #[test]
    fn file_and_directory_swaps_are_restored() {
        let dir = init_repo();
        let root = dir.path();
        write(root, "x", b"x was a file\n");
        write(root, "d/e.txt", b"d was a directory\n");
        let repo = Repo::open(root).unwrap();
        let before = capture(root);
        let s1 = repo.snapshot("refs/promptloop/w/1", "1").unwrap();
        fs::remove_file(root.join("x")).unwrap();
        write(root, "x/y.txt", b"now a dir\n");
        fs::remove_dir_all(root.join("d")).unwrap();
        write(root, "d", b"now a file\n");
        repo.restore(&s1, "refs/promptloop/w/backup").unwrap();
        assert_eq!(capture(root), before);
    }

    #[test]
    fn linked_worktree_uses_its_own_index() {
        let dir = rich_repo();
        let main = dir.path();
        let wt_parent = tempfile::tempdir().unwrap();
        let wt = wt_parent.path().join("wt");
        git(
            main,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "feature",
                wt.to_str().unwrap(),
            ],
        );
        write(&wt, "README.md", b"worktree edit\n");
        write(&wt, "wt-untracked.txt", b"untracked\n");
        git(&wt, &["add", "README.md"]);
        let main_before = capture(main);
        let repo = Repo::open(&wt).unwrap();
        repo.ensure_excluded(".promptloop/").unwrap();
        let before = capture(&wt);
        let s1 = repo.snapshot("refs/promptloop/wt/1", "1").unwrap();
        write(&wt, "README.md", b"agent\n");
        write(&wt, "new/file.txt", b"agent\n");
        fs::remove_file(wt.join("wt-untracked.txt")).unwrap();
        repo.restore(&s1, "refs/promptloop/wt/backup").unwrap();
        assert_eq!(capture(&wt), before);
        assert_eq!(capture(main), main_before);
    }

    #[test]
    fn thousands_of_paths_go_through_stdin_without_deadlock() {
        // Enough paths that check-ignore's output outgrows a pipe buffer while we still
        // write its input.
        let dir = init_repo();
        let root = dir.path();
        write(root, "keep.txt", b"keep\n");
        let repo = Repo::open(root).unwrap();
        let before = capture(root);
        let s1 = repo.snapshot("refs/promptloop/m/1", "1").unwrap();
        for i in 0..4000 {
            write(root, &format!("many/sub {}/file-{i}.txt", i % 7), b"x");
        }
        write(root, "keep.txt", b"changed\n");
        repo.restore(&s1, "refs/promptloop/m/backup").unwrap();
        assert_eq!(capture(root), before);
    }

    #[test]
    fn racily_clean_entries_are_still_rehashed() {
        // A file rewritten within the index's own timestamp keeps matching stat data; git
        // only catches that because the entry is not older than the index file. The copied
        // index must therefore keep the real index's mtime.
        let dir = init_repo();
        let root = dir.path();
        git(root, &["config", "core.trustctime", "false"]);
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        let set_mtime = |path: &Path| {
            let file = fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_modified(past).unwrap();
        };
        write(root, "f.txt", b"aaaa");
        set_mtime(&root.join("f.txt"));
        git(root, &["add", "f.txt"]);
        fs::OpenOptions::new()
            .write(true)
            .open(root.join("f.txt"))
            .unwrap()
            .write_all(b"bbbb")
            .unwrap();
        set_mtime(&root.join("f.txt"));
        set_mtime(&root.join(".git/index"));
        let repo = Repo::open(root).unwrap();
        let s = repo.snapshot("refs/promptloop/r/1", "1").unwrap();
        assert_eq!(
            git(root, &["cat-file", "blob", &format!("{}:f.txt", s.tree)]),
            "bbbb"
        );
    }

    #[test]
    fn nested_repository_is_not_deleted_and_restore_says_so() {
        let dir = init_repo();
        let root = dir.path();
        write(root, "a.txt", b"a\n");
        let repo = Repo::open(root).unwrap();
        let s1 = repo.snapshot("refs/promptloop/n/1", "1").unwrap();
        let nested = root.join("vendor/lib");
        fs::create_dir_all(&nested).unwrap();
        git(&nested, &["init", "-q"]);
        write(&nested, "f.txt", b"cloned\n");
        git(&nested, &["add", "-A"]);
        git(&nested, &["commit", "-q", "-m", "c"]);
        let err = repo.restore(&s1, "refs/promptloop/n/backup").unwrap_err();
        assert!(matches!(err, GitError::RestoreIncomplete { .. }), "{err}");
        assert!(
            err.to_string().contains("refs/promptloop/n/backup"),
            "{err}"
        );
        assert!(nested.join("f.txt").exists());
    }
}
