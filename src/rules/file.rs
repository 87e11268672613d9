//! The managed-section writer: adds rule entries to the `## Learned Rules &
//! Patterns` section of an instruction file (CLAUDE.md, AGENTS.md, …).
//!
//! The file belongs to the user; promptloop only owns the bytes it inserts.
//! So the edit is a pure *insertion*: every other byte (BOM, CRLF, tabs, a
//! missing final newline, invalid UTF-8 even) is copied through untouched.
//! The document is scanned as bytes for that reason — decoding and
//! re-encoding could change what we do not own.
//!
//! Safety properties:
//! - atomic: a temp file in the same directory is written, fsynced and renamed
//!   over the target, then the directory is fsynced; readers and crashes see
//!   the old or the new file, never a torn one;
//! - serialized: concurrent writers (threads or processes) take an exclusive
//!   lock for the whole read-modify-write, so no entry is lost;
//! - idempotent: a rule already in the section is not added again, and the
//!   file is not even rewritten.

use crate::rules::format::{Label, Rule, normalized_key, one_line, parse_label};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The heading of the managed section.
pub const SECTION_HEADING: &str = "## Learned Rules & Patterns";

/// Temp files are named `.<file name>.promptloop-XXXXXX.tmp` so that one left
/// behind by a killed process is recognisable (and is removed by the next
/// writer, under the lock).
const TEMP_INFIX: &str = ".promptloop-";
const TEMP_SUFFIX: &str = ".tmp";

/// How many symlinks deep we follow before calling it a loop (Linux's limit).
const MAX_SYMLINK_HOPS: usize = 40;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What [`add_entry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// The entry was written into the section.
    Added,
    /// A rule with the same [`normalized_key`] is already in the section; the
    /// file was left untouched.
    AlreadyPresent,
}

/// Errors of the rules-file writer. Messages are lowercase fragments meant to
/// follow "failed to …"; the I/O cause is available as the error's source.
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    /// Reading the file (or following its symlink) failed.
    #[error("read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the new version failed (disk full, I/O error, …); the old
    /// file is intact.
    #[error("write {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The operating system refused access.
    #[error("{op} {}: permission denied", .path.display())]
    PermissionDenied {
        /// What was being done: "read", "write", "lock", "create directory".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is marked read-only; promptloop respects that rather than
    /// replacing it (which a rename could do regardless of the mode bits).
    #[error("write {}: the file is read-only", .path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// The path names a directory, not a file.
    #[error("use {}: it is a directory, not a file", .path.display())]
    IsDirectory {
        /// The path.
        path: PathBuf,
    },
    /// Taking the writers' lock failed.
    #[error("lock {}", .path.display())]
    Lock {
        /// The locked directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating the file's parent directories failed.
    #[error("create directory {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The symlink chain is a loop or too long.
    #[error("resolve {}: too many levels of symbolic links", .path.display())]
    SymlinkLoop {
        /// The path given.
        path: PathBuf,
    },
    /// The entry text or the rule is unusable (it would break the file).
    #[error("add an entry to {}: {reason}", .path.display())]
    InvalidEntry {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// What an I/O operation was doing, to pick the error variant.
#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
    Lock,
    CreateDir,
}

fn io_error(op: Op, path: &Path, source: io::Error) -> RulesFileError {
    let path = path.to_path_buf();
    match source.kind() {
        io::ErrorKind::PermissionDenied => RulesFileError::PermissionDenied {
            op: match op {
                Op::Read => "read",
                Op::Write => "write",
                Op::Lock => "lock",
                Op::CreateDir => "create directory",
            },
            path,
            source,
        },
        io::ErrorKind::IsADirectory => RulesFileError::IsDirectory { path },
        _ => match op {
            Op::Read => RulesFileError::Read { path, source },
            Op::Write => RulesFileError::Write { path, source },
            Op::Lock => RulesFileError::Lock { path, source },
            Op::CreateDir => RulesFileError::CreateDir { path, source },
        },
    }
}

/// Adds `entry_text` (normally [`render_entry`](crate::rules::format::render_entry)'s
/// output) at the end of the managed section of the file at `path`.
///
/// - The section is the first line equal to [`SECTION_HEADING`] (trailing
///   spaces tolerated) outside code fences; it runs to the next `#` / `##`
///   heading outside code fences, or to the end of the file.
/// - The entry goes after the section's last non-blank line, one blank line
///   before it; a missing section is appended at the end of the file; a
///   missing file is created (parent directories too).
/// - The file's line ending (LF or CRLF) is used for the inserted bytes; all
///   other bytes are kept exactly.
/// - If the section already has a `**Rule**:` line with the same
///   [`normalized_key`] as `rule.rule`, nothing is written and
///   [`AddOutcome::AlreadyPresent`] is returned.
/// - A symlinked `path` is written through to its final target, the link
///   stays a link; the target's permissions are kept.
pub fn add_entry(path: &Path, rule: &Rule, entry_text: &str) -> Result<AddOutcome, RulesFileError> {
    let invalid = |reason| RulesFileError::InvalidEntry {
        path: path.to_path_buf(),
        reason,
    };
    let key = normalized_key(&rule.rule);
    if key.is_empty() {
        return Err(invalid("the rule text is empty"));
    }
    let entry = entry_lines(entry_text).map_err(invalid)?;

    let target = resolve_symlinks(path)?;
    if fs::metadata(&target).is_ok_and(|m| m.is_dir()) {
        // Checked before creating anything, so a mistaken path has no effect.
        return Err(RulesFileError::IsDirectory { path: target });
    }
    let dir = parent_dir(&target);
    fs::create_dir_all(&dir).map_err(|e| io_error(Op::CreateDir, &dir, e))?;

    let lock = WritersLock::acquire(&dir)?;
    // Everything below runs under the lock; in particular the read, so that
    // we modify the latest version and cannot lose another writer's entry.
    remove_stale_temps(&dir, &target);
    let (existing, metadata) = read_existing(&target)?;
    let new_bytes = match plan_insert(existing.as_deref(), &key, &entry) {
        Plan::AlreadyPresent => return Ok(AddOutcome::AlreadyPresent),
        Plan::Write(bytes) => bytes,
    };
    // After dedup: a known rule in a read-only file is simply "present".
    if let Some(meta) = &metadata
        && meta.permissions().readonly()
    {
        return Err(RulesFileError::ReadOnly { path: target });
    }
    write_atomic(&target, &dir, &lock, &new_bytes, metadata.as_ref())?;
    drop(lock);
    Ok(AddOutcome::Added)
}

/// The rule texts (values of `**Rule**:` lines, continuation lines joined)
/// currently in the managed section of the file at `path`, in file order.
/// A missing file or a missing section gives an empty list.
///
/// No lock is taken: writers replace the file by rename, so a reader always
/// sees one complete version.
pub fn read_section_rules(path: &Path) -> Result<Vec<String>, RulesFileError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(Op::Read, path, e)),
    };
    let doc = Doc::parse(&bytes);
    Ok(match doc.section() {
        Some(section) => doc.section_rules(&section),
        None => Vec::new(),
    })
}

/// The managed section of a file as it is now: what the store compares its last render
/// against, and how much room the user's own text leaves for the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSnapshot {
    /// The section's body: the lines after the heading up to its last non-blank line, with
    /// LF line endings. `None` when the file has no section (or does not exist).
    pub body: Option<String>,
    /// Lines of the file outside the heading and the body (counting the blank line that
    /// will separate a new section from the text before it).
    pub outside_lines: usize,
    /// Characters of the file outside the heading and the body.
    pub outside_chars: usize,
}

/// What [`replace_section_body`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceOutcome {
    /// The section already had this body; the file was not rewritten.
    Unchanged,
    /// The new body was written.
    Written,
    /// The section's body is no longer the one the caller read (someone edited the file
    /// in between); nothing was written. Read it again and retry.
    Changed,
}

/// Reads the managed section of the file at `path`; a missing file is an empty one.
pub fn read_section(path: &Path) -> Result<SectionSnapshot, RulesFileError> {
    let target = resolve_symlinks(path)?;
    let bytes = match fs::read(&target) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(Op::Read, &target, e)),
    };
    Ok(snapshot(&bytes))
}

/// Replaces the body of the managed section of the file at `path` with `body` (LF line
/// endings; converted to the file's), keeping every byte outside the section's body
/// exactly. `expected` is the body the caller read ([`SectionSnapshot::body`]); if the file
/// changed since, nothing is written and [`ReplaceOutcome::Changed`] is returned.
///
/// A missing section is appended at the end of the file, a missing file is created, as
/// [`add_entry`] does; the write is atomic and locked the same way.
pub fn replace_section_body(
    path: &Path,
    expected: Option<&str>,
    body: &str,
) -> Result<ReplaceOutcome, RulesFileError> {
    check_body(body).map_err(|reason| RulesFileError::InvalidEntry {
        path: path.to_path_buf(),
        reason,
    })?;
    let target = resolve_symlinks(path)?;
    if fs::metadata(&target).is_ok_and(|m| m.is_dir()) {
        return Err(RulesFileError::IsDirectory { path: target });
    }
    let dir = parent_dir(&target);
    fs::create_dir_all(&dir).map_err(|e| io_error(Op::CreateDir, &dir, e))?;
    let lock = WritersLock::acquire(&dir)?;
    remove_stale_temps(&dir, &target);
    let (existing, metadata) = read_existing(&target)?;
    let current = existing.as_deref().map(snapshot).and_then(|s| s.body);
    if current.as_deref() != expected {
        return Ok(ReplaceOutcome::Changed);
    }
    if current.as_deref() == Some(body) {
        return Ok(ReplaceOutcome::Unchanged);
    }
    if let Some(meta) = &metadata
        && meta.permissions().readonly()
    {
        return Err(RulesFileError::ReadOnly { path: target });
    }
    let new_bytes = plan_replace(existing.as_deref(), body);
    write_atomic(&target, &dir, &lock, &new_bytes, metadata.as_ref())?;
    drop(lock);
    Ok(ReplaceOutcome::Written)
}

/// A body must not end the section early (a `#`/`##` heading outside code) nor leave a
/// code fence open, which would swallow the user's text after it.
fn check_body(body: &str) -> Result<(), &'static str> {
    if body.contains('\r') {
        return Err("the section body contains a carriage return");
    }
    match structure_breaker(body.lines()) {
        Some(Breaker::Heading) => {
            Err("the section body contains a `#` or `##` heading, which would end the section")
        }
        Some(Breaker::OpenFence) => Err("the section body opens a code fence it does not close"),
        None => Ok(()),
    }
}

/// What in a piece of text would break the section it is written into.
enum Breaker {
    /// A `#` or `##` heading outside a code fence: it would end the section early.
    Heading,
    /// A code fence left open: it would swallow the user's text after it.
    OpenFence,
}

/// The first thing in `lines` that would break the section, if any.
fn structure_breaker<'a>(lines: impl Iterator<Item = &'a str>) -> Option<Breaker> {
    let mut fence = None;
    for line in lines {
        let bytes = line.as_bytes();
        match fence {
            Some((ch, n)) => {
                if fence_close(bytes, ch, n) {
                    fence = None;
                }
            }
            None => {
                if let Some(open) = fence_open(bytes) {
                    fence = Some(open);
                } else if heading_level(bytes).is_some_and(|level| level <= 2) {
                    return Some(Breaker::Heading);
                }
            }
        }
    }
    fence.map(|_| Breaker::OpenFence)
}

/// The byte range of the section's body: after the heading line, up to the end of the
/// section's last non-blank line (the blank lines before the next heading stay outside).
fn body_range(doc: &Doc<'_>, section: &Section) -> (usize, usize) {
    let heading = &doc.lines[section.heading];
    let start = heading.next;
    let end = (section.heading + 1..section.end)
        .rev()
        .find(|&i| !is_blank(doc.content(i)))
        .map_or(start, |i| doc.lines[i].next);
    (start, end)
}

fn count_lines(bytes: &[u8]) -> usize {
    let newlines = bytes.iter().filter(|b| **b == b'\n').count();
    newlines + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

fn count_chars(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes).chars().count()
}

fn snapshot(bytes: &[u8]) -> SectionSnapshot {
    let doc = Doc::parse(bytes);
    match doc.section() {
        Some(section) => {
            let (start, end) = body_range(&doc, &section);
            let heading = &doc.lines[section.heading];
            let body = String::from_utf8_lossy(&bytes[start..end]).replace("\r\n", "\n");
            let before = &bytes[..heading.start];
            let after = &bytes[end..];
            SectionSnapshot {
                body: Some(body),
                outside_lines: count_lines(before) + count_lines(after),
                outside_chars: count_chars(before) + count_chars(after),
            }
        }
        None => {
            let blank_needed = usize::from(
                !bytes.is_empty()
                    && doc
                        .lines
                        .len()
                        .checked_sub(1)
                        .is_some_and(|last| !is_blank(doc.content(last))),
            );
            SectionSnapshot {
                body: None,
                outside_lines: count_lines(bytes) + blank_needed,
                outside_chars: count_chars(bytes) + blank_needed,
            }
        }
    }
}

/// The new file content with the section's body replaced (or the section added).
fn plan_replace(existing: Option<&[u8]>, body: &str) -> Vec<u8> {
    let bytes = existing.unwrap_or_default();
    let doc = Doc::parse(bytes);
    let nl = doc.newline();
    let body_bytes = if nl == b"\r\n" {
        body.replace('\n', "\r\n").into_bytes()
    } else {
        body.as_bytes().to_vec()
    };
    match doc.section() {
        Some(section) => {
            let (start, end) = body_range(&doc, &section);
            let heading = &doc.lines[section.heading];
            let mut out = Vec::with_capacity(bytes.len() + body_bytes.len());
            out.extend_from_slice(&bytes[..start]);
            if !heading.has_newline && !body_bytes.is_empty() {
                // The heading is the file's last line, without a newline.
                out.extend_from_slice(nl);
            }
            out.extend_from_slice(&body_bytes);
            out.extend_from_slice(&bytes[end..]);
            out
        }
        None => {
            let mut out = bytes.to_vec();
            let body_empty = bytes.is_empty() || bytes == BOM;
            if !body_empty {
                if !bytes.ends_with(b"\n") {
                    out.extend_from_slice(nl);
                    out.extend_from_slice(nl);
                } else if doc
                    .lines
                    .len()
                    .checked_sub(1)
                    .is_some_and(|last| !is_blank(doc.content(last)))
                {
                    out.extend_from_slice(nl);
                }
            }
            out.extend_from_slice(SECTION_HEADING.as_bytes());
            out.extend_from_slice(nl);
            out.extend_from_slice(&body_bytes);
            out
        }
    }
}

// ---------------------------------------------------------------------------
// Locking

/// The exclusive lock serializing writers of files in one directory.
///
/// Choice: we `flock` the *parent directory* opened as a `File`, not the
/// target and not a sidecar file.
/// - Not the target: the rename replaces its inode, so a writer that opened
///   the old inode would lock something nobody else locks any more.
/// - Not a sidecar `.lock` file: it would be left in the user's project
///   forever (another file to ignore in git, to explain, to clean up).
/// - The directory's inode is stable across renames, it exists whenever the
///   target can, and `flock` on a directory fd works on Linux and macOS.
///   Writers reaching the file through different symlinks resolve to the same
///   target first, hence lock the same directory.
///
/// The cost: writers of *different* files in the same directory serialize
/// too — harmless for a few small writes. On platforms where a directory
/// cannot be opened as a file (Windows) we fall back to a sidecar lock file.
/// Known gap: flock over NFS is emulated with POSIX locks, which refuse a
/// read-only directory fd; there `acquire` fails with a lock error rather
/// than writing unlocked.
struct WritersLock {
    /// Held open for the lock's lifetime; closing it releases the lock (also
    /// when the process is killed).
    handle: File,
}

impl WritersLock {
    fn acquire(dir: &Path) -> Result<Self, RulesFileError> {
        #[cfg(unix)]
        let handle = File::open(dir).map_err(|e| io_error(Op::Lock, dir, e))?;
        #[cfg(not(unix))]
        let handle = {
            let lock_path = dir.join(".promptloop.lock");
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| io_error(Op::Lock, &lock_path, e))?
        };
        handle.lock().map_err(|e| io_error(Op::Lock, dir, e))?;
        Ok(Self { handle })
    }

    /// Makes the rename durable: the directory entry itself must be synced.
    fn sync_dir(&self, dir: &Path) -> Result<(), RulesFileError> {
        #[cfg(unix)]
        match self.handle.sync_all() {
            Ok(()) => {}
            // Some filesystems cannot fsync a directory; the rename is done
            // and visible, so that is not worth failing the write for.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                ) => {}
            Err(e) => return Err(io_error(Op::Write, dir, e)),
        }
        #[cfg(not(unix))]
        let _ = (&self.handle, dir);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// File system helpers

/// Follows `path` through symlinks to the file that is really written, so a
/// `CLAUDE.md → AGENTS.md` link stays a link. A dangling link resolves to the
/// (not yet existing) file it points at.
fn resolve_symlinks(path: &Path) -> Result<PathBuf, RulesFileError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current).map_err(|e| io_error(Op::Read, &current, e))?;
                current = if link.is_absolute() {
                    link
                } else {
                    parent_dir(&current).join(link)
                };
            }
            Ok(_) => return Ok(current),
            // Nothing there (or a parent is a file): that is what we write,
            // and creating its directory will report a parent problem.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(current);
            }
            Err(e) => return Err(io_error(Op::Read, &current, e)),
        }
    }
    Err(RulesFileError::SymlinkLoop {
        path: path.to_path_buf(),
    })
}

/// The directory containing `path` ("." for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}{TEMP_INFIX}")
}

/// Removes temp files left by writers that were killed between creating and
/// renaming them. Safe only under the lock: then no live writer has one.
/// Best effort: a leftover is litter, not a correctness problem.
fn remove_stale_temps(dir: &Path, target: &Path) {
    let prefix = temp_prefix(target);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix)
            && name.ends_with(TEMP_SUFFIX)
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Reads the current content and metadata from one open handle, so both
/// describe the same inode.
fn read_existing(target: &Path) -> Result<(Option<Vec<u8>>, Option<Metadata>), RulesFileError> {
    let mut file = match File::open(target) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, None)),
        Err(e) => return Err(io_error(Op::Read, target, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(Op::Read, target, e))?;
    if meta.is_dir() {
        return Err(RulesFileError::IsDirectory {
            path: target.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error(Op::Read, target, e))?;
    Ok((Some(bytes), Some(meta)))
}

/// Replaces `target` with `bytes` atomically (temp file + fsync + rename +
/// directory fsync). On any failure the temp file is removed (by
/// `NamedTempFile`'s drop) and the old file is untouched.
fn write_atomic(
    target: &Path,
    dir: &Path,
    lock: &WritersLock,
    bytes: &[u8],
    original: Option<&Metadata>,
) -> Result<(), RulesFileError> {
    let write_err = |e| io_error(Op::Write, target, e);
    let prefix = temp_prefix(target);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    if original.is_none() {
        // A new file gets the usual 0o666 minus umask, like any editor would
        // create it, instead of tempfile's private 0o600.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(write_err)?;
    if let Some(meta) = original {
        // Before the data sync, so the mode is durable with the content.
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(write_err)?;
        copy_owner(tmp.as_file(), meta);
    }
    tmp.write_all(bytes).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(target).map_err(|e| write_err(e.error))?;
    lock.sync_dir(dir)
}

/// Keeps the original owner when we can (e.g. running as root on a user's
/// file). Best effort: an unprivileged process cannot chown, and then the
/// file is ours anyway.
#[cfg(unix)]
fn copy_owner(file: &File, original: &Metadata) {
    use std::os::unix::fs::MetadataExt;
    let Ok(current) = file.metadata() else {
        return;
    };
    if current.uid() != original.uid() || current.gid() != original.gid() {
        let _ = std::os::unix::fs::fchown(file, Some(original.uid()), Some(original.gid()));
    }
}

#[cfg(not(unix))]
fn copy_owner(_file: &File, _original: &Metadata) {}

// ---------------------------------------------------------------------------
// The document model (pure, byte-based)

/// The entry's lines, without line endings and surrounding blank lines,
/// checked so that inserting them cannot break the file's structure.
fn entry_lines(entry_text: &str) -> Result<Vec<&str>, &'static str> {
    let mut lines: Vec<&str> = entry_text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let first = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .ok_or("the entry is empty")?;
    let lines = lines.split_off(first);
    if lines.iter().any(|l| l.contains('\r')) {
        return Err("the entry contains a bare carriage return");
    }
    match structure_breaker(lines.iter().copied()) {
        Some(Breaker::Heading) => {
            Err("the entry contains a `#` or `##` heading, which would end the section")
        }
        Some(Breaker::OpenFence) => Err("the entry opens a code fence it does not close"),
        None => Ok(lines),
    }
}

/// The result of planning an insertion.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    AlreadyPresent,
    Write(Vec<u8>),
}

/// Computes the new file content: `existing` with the entry inserted, or the
/// content of a new file when `existing` is `None`.
fn plan_insert(existing: Option<&[u8]>, key: &str, entry: &[&str]) -> Plan {
    let Some(bytes) = existing else {
        let mut out = Vec::new();
        push_section(&mut out, entry, b"\n");
        return Plan::Write(out);
    };
    let doc = Doc::parse(bytes);
    let nl = doc.newline();
    match doc.section() {
        Some(section) => {
            if doc
                .section_rules(&section)
                .iter()
                .any(|r| normalized_key(r) == key)
            {
                return Plan::AlreadyPresent;
            }
            // The heading is non-blank, so there is always an anchor.
            let anchor = (section.heading..section.end)
                .rev()
                .find(|&i| !is_blank(doc.content(i)))
                .unwrap_or(section.heading);
            let line = &doc.lines[anchor];
            let mut inserted = Vec::new();
            if !line.has_newline {
                // The anchor is the file's last line, without a newline.
                inserted.extend_from_slice(nl);
            }
            inserted.extend_from_slice(nl);
            push_joined(&mut inserted, entry, nl);
            if line.has_newline {
                inserted.extend_from_slice(nl);
            }
            let at = line.next;
            let mut out = Vec::with_capacity(bytes.len() + inserted.len());
            out.extend_from_slice(&bytes[..at]);
            out.extend_from_slice(&inserted);
            out.extend_from_slice(&bytes[at..]);
            Plan::Write(out)
        }
        None => {
            let mut out = bytes.to_vec();
            let body_empty = bytes.is_empty() || bytes == BOM;
            if !body_empty {
                if !bytes.ends_with(b"\n") {
                    out.extend_from_slice(nl);
                    out.extend_from_slice(nl);
                } else if doc
                    .lines
                    .len()
                    .checked_sub(1)
                    .is_some_and(|last| !is_blank(doc.content(last)))
                {
                    out.extend_from_slice(nl);
                }
            }
            push_section(&mut out, entry, nl);
            Plan::Write(out)
        }
    }
}

fn push_section(out: &mut Vec<u8>, entry: &[&str], nl: &[u8]) {
    out.extend_from_slice(SECTION_HEADING.as_bytes());
    out.extend_from_slice(nl);
    out.extend_from_slice(nl);
    push_joined(out, entry, nl);
    out.extend_from_slice(nl);
}

fn push_joined(out: &mut Vec<u8>, lines: &[&str], nl: &[u8]) {
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(nl);
        }
        out.extend_from_slice(line.as_bytes());
    }
}

/// One line of the file: `bytes[start..end]` is its content without `\r\n`
/// / `\n`; `next` is where the following line starts.
#[derive(Debug)]
struct LineSpan {
    start: usize,
    end: usize,
    next: usize,
    has_newline: bool,
}

/// The managed section: the heading line and the (exclusive) line it ends at.
#[derive(Debug)]
struct Section {
    heading: usize,
    end: usize,
}

/// A file split into lines, with which lines are code (fences and inside).
struct Doc<'a> {
    bytes: &'a [u8],
    lines: Vec<LineSpan>,
    code: Vec<bool>,
}

impl<'a> Doc<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        while start < bytes.len() {
            let (end, next, has_newline) = match bytes[start..].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let nl = start + i;
                    let end = if nl > start && bytes[nl - 1] == b'\r' {
                        nl - 1
                    } else {
                        nl
                    };
                    (end, nl + 1, true)
                }
                None => (bytes.len(), bytes.len(), false),
            };
            lines.push(LineSpan {
                start,
                end,
                next,
                has_newline,
            });
            start = next;
        }
        let mut doc = Doc {
            bytes,
            lines,
            code: Vec::new(),
        };
        let mut code = vec![false; doc.lines.len()];
        let mut fence: Option<(u8, usize)> = None;
        for (i, is_code) in code.iter_mut().enumerate() {
            let content = doc.content(i);
            match fence {
                Some((ch, n)) => {
                    *is_code = true;
                    if fence_close(content, ch, n) {
                        fence = None;
                    }
                }
                None => {
                    if let Some(open) = fence_open(content) {
                        *is_code = true;
                        fence = Some(open);
                    }
                }
            }
        }
        doc.code = code;
        doc
    }

    /// Line `i`'s content, without its line ending (and without the BOM on
    /// the first line).
    fn content(&self, i: usize) -> &'a [u8] {
        let line = &self.lines[i];
        let content = &self.bytes[line.start..line.end];
        if i == 0 {
            content.strip_prefix(BOM).unwrap_or(content)
        } else {
            content
        }
    }

    /// The file's line ending, from its first line break (LF if none).
    fn newline(&self) -> &'static [u8] {
        match self.lines.first() {
            Some(line) if line.has_newline && line.next - line.end == 2 => b"\r\n",
            _ => b"\n",
        }
    }

    fn section(&self) -> Option<Section> {
        let heading = (0..self.lines.len()).find(|&i| {
            !self.code[i] && trim_end_blank(self.content(i)) == SECTION_HEADING.as_bytes()
        })?;
        let end = (heading + 1..self.lines.len())
            .find(|&i| !self.code[i] && heading_level(self.content(i)).is_some_and(|l| l <= 2))
            .unwrap_or(self.lines.len());
        Some(Section { heading, end })
    }

    /// Rule texts of the section's `**Rule**:` lines outside code blocks;
    /// indented lines right after a rule line continue it.
    fn section_rules(&self, section: &Section) -> Vec<String> {
        let text = |i: usize| String::from_utf8_lossy(self.content(i));
        let mut rules = Vec::new();
        let mut i = section.heading + 1;
        while i < section.end {
            if !self.code[i]
                && let Some((Label::Rule, value)) = parse_label(&text(i))
            {
                let mut rule = value.to_string();
                let mut j = i + 1;
                while j < section.end && !self.code[j] {
                    let line = text(j);
                    if is_blank(line.as_bytes())
                        || !line.starts_with([' ', '\t'])
                        || parse_label(&line).is_some()
                    {
                        break;
                    }
                    rule.push(' ');
                    rule.push_str(line.trim());
                    j += 1;
                }
                let rule = one_line(&rule);
                if !rule.is_empty() {
                    rules.push(rule);
                }
                i = j;
            } else {
                i += 1;
            }
        }
        rules
    }
}

fn is_blank(content: &[u8]) -> bool {
    content.iter().all(u8::is_ascii_whitespace)
}

fn trim_end_blank(content: &[u8]) -> &[u8] {
    let len = content
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(0, |i| i + 1);
    &content[..len]
}

/// Up to three spaces of indentation, as CommonMark allows for headings and
/// fences (four make an indented code block).
fn strip_indent(content: &[u8]) -> Option<&[u8]> {
    let indent = content.iter().take_while(|b| **b == b' ').count();
    (indent <= 3).then(|| &content[indent..])
}

/// An ATX heading's level (`# ` → 1, `## ` → 2, …); `#tag` is not a heading.
fn heading_level(content: &[u8]) -> Option<usize> {
    let rest = strip_indent(content)?;
    let level = rest.iter().take_while(|b| **b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    match rest.get(level) {
        None | Some(b' ' | b'\t') => Some(level),
        _ => None,
    }
}

/// An opening code fence: three or more backticks or tildes.
fn fence_open(content: &[u8]) -> Option<(u8, usize)> {
    let rest = strip_indent(content)?;
    let ch = *rest.first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let n = rest.iter().take_while(|b| **b == ch).count();
    if n < 3 || (ch == b'`' && rest[n..].contains(&b'`')) {
        return None;
    }
    Some((ch, n))
}

/// A closing fence for an opening `(ch, n)`: at least `n` of `ch`, nothing
/// but blanks after.
fn fence_close(content: &[u8], ch: u8, n: usize) -> bool {
    let Some(rest) = strip_indent(content) else {
        return false;
    };
    let run = rest.iter().take_while(|b| **b == ch).count();
    run >= n && is_blank(&rest[run..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::format::render_entry;

    const ENTRY: &str = "- **Rule**: Use X\n- **When**: Doing Y\n- **Why**: Because Z\n  - **Source**: Learned on 2026-01-01 10:00 from test failure\n";

    fn plan(existing: &str, key: &str) -> Plan {
        let lines = entry_lines(ENTRY).unwrap();
        plan_insert(Some(existing.as_bytes()), key, &lines)
    }

    fn written(existing: &str) -> String {
        match plan(existing, "use x") {
            Plan::Write(bytes) => String::from_utf8(bytes).unwrap(),
            Plan::AlreadyPresent => panic!("unexpected AlreadyPresent"),
        }
    }

    /// Asserts `new` is `old` with exactly `inserted` spliced in at `at`.
    fn assert_splice(old: &str, new: &str, at: usize, inserted: &str) {
        assert_eq!(&new[..at], &old[..at], "bytes before the insertion changed");
        assert_eq!(&new[at..at + inserted.len()], inserted, "inserted bytes");
        assert_eq!(
            &new[at + inserted.len()..],
            &old[at..],
            "bytes after the insertion changed"
        );
    }

    const BLOCK_LF: &str = "\n- **Rule**: Use X\n- **When**: Doing Y\n- **Why**: Because Z\n  - **Source**: Learned on 2026-01-01 10:00 from test failure\n";

    #[test]
    fn section_in_the_middle_followed_by_other_sections() {
        let old = "# Project\n\nIntro\twith tab, ünïcödé 🚀\n\n## Learned Rules & Patterns\n\n### Old\n- **Rule**: Old rule\n- **When**: w\n- **Why**: y\n\n\n## Build\n\nrun `make`\n";
        let new = written(old);
        let at = old.find("- **Why**: y\n").unwrap() + "- **Why**: y\n".len();
        assert_splice(old, &new, at, BLOCK_LF);
    }

    #[test]
    fn section_at_eof_without_trailing_newline() {
        let old =
            "# P\n\n## Learned Rules & Patterns\n\n- **Rule**: Old\n- **When**: w\n- **Why**: y";
        let new = written(old);
        let inserted = format!("\n{}", BLOCK_LF.trim_end_matches('\n'));
        assert_splice(old, &new, old.len(), &inserted);
        assert!(!new.ends_with('\n'));
    }

    #[test]
    fn empty_section_heading_with_trailing_spaces() {
        let old = "## Learned Rules & Patterns   \n## Next\n";
        let new = written(old);
        assert_splice(old, &new, old.find("## Next").unwrap(), BLOCK_LF);
    }

    #[test]
    fn level3_headings_belong_to_the_section_level1_ends_it() {
        let old =
            "## Learned Rules & Patterns\n### A\n- **Rule**: a\n\n### B\ntext\n# Top\nafter\n";
        let new = written(old);
        assert_splice(old, &new, old.find("# Top").unwrap(), BLOCK_LF);
    }

    #[test]
    fn heading_inside_code_fence_is_not_the_section() {
        let old = "# Docs\n\n```markdown\n## Learned Rules & Patterns\n- **Rule**: Use X\n```\n\n~~~~\n## Learned Rules & Patterns\n~~~~\nend\n";
        // Not AlreadyPresent: the fenced rule is an example, not a rule.
        let new = written(old);
        assert_splice(
            old,
            &new,
            old.len(),
            &format!("\n## Learned Rules & Patterns\n{BLOCK_LF}"),
        );
    }

    #[test]
    fn fenced_heading_inside_section_does_not_end_it() {
        let old = "## Learned Rules & Patterns\n\n- **Rule**: a\n\n```\n## Not a heading\n```\nlast line\n\n## Other\n";
        let new = written(old);
        assert_splice(old, &new, old.find("\n## Other").unwrap(), BLOCK_LF);
    }

    #[test]
    fn missing_section_appended_with_one_blank_line() {
        for (old, sep) in [
            ("# P\ntext\n", "\n"),
            ("# P\ntext", "\n\n"),
            ("# P\ntext\n\n", ""),
            ("", ""),
        ] {
            let new = written(old);
            let expected_tail = format!("{sep}## Learned Rules & Patterns\n{BLOCK_LF}");
            assert_splice(old, &new, old.len(), &expected_tail);
        }
    }

    #[test]
    fn crlf_file_gets_crlf_insertions() {
        let old =
            "# P\r\n\r\n## Learned Rules & Patterns\r\n\r\n- **Rule**: a\r\n\r\n## Other\r\nx";
        let new = written(old);
        let at = old.find("\r\n## Other").unwrap();
        assert_splice(old, &new, at, &BLOCK_LF.replace('\n', "\r\n"));
        assert!(
            !new.replace("\r\n", "").contains('\n'),
            "a bare LF slipped in"
        );
        let old = "# P\r\ntext\r\n";
        let new = written(old);
        assert_splice(
            old,
            &new,
            old.len(),
            &format!("\n## Learned Rules & Patterns\n{BLOCK_LF}").replace('\n', "\r\n"),
        );
    }

    #[test]
    fn bom_is_preserved_and_heading_on_first_line_found() {
        let old = "\u{feff}## Learned Rules & Patterns\n- **Rule**: a\n";
        let new = written(old);
        assert_splice(old, &new, old.len(), BLOCK_LF);
        let new = written("\u{feff}");
        assert_eq!(
            new,
            format!("\u{feff}## Learned Rules & Patterns\n{BLOCK_LF}")
        );
    }

    #[test]
    fn invalid_utf8_outside_is_preserved() {
        let mut old = b"# P \xff\xfe\n\n## Learned Rules & Patterns\n- **Rule**: a \xc3\n".to_vec();
        let lines = entry_lines(ENTRY).unwrap();
        let Plan::Write(new) = plan_insert(Some(&old), "use x", &lines) else {
            panic!("expected a write")
        };
        old.extend_from_slice(BLOCK_LF.as_bytes());
        assert_eq!(new, old);
    }

    #[test]
    fn new_file_content() {
        let lines = entry_lines(ENTRY).unwrap();
        assert_eq!(
            plan_insert(None, "use x", &lines),
            Plan::Write(format!("## Learned Rules & Patterns\n{BLOCK_LF}").into_bytes())
        );
    }

    #[test]
    fn dedup_ignores_case_spacing_emphasis_and_punctuation() {
        let old = "## Learned Rules & Patterns\n\n- **Rule**: USE   `x`.\n- **When**: w\n";
        assert_eq!(plan(old, &normalized_key("use x")), Plan::AlreadyPresent);
        let wrapped = "## Learned Rules & Patterns\n\n- **Rule**: Use\n    x\n";
        assert_eq!(plan(wrapped, "use x"), Plan::AlreadyPresent);
        // Same rule in another section does not count.
        let elsewhere = "## Notes\n- **Rule**: Use X\n## Learned Rules & Patterns\n";
        assert!(matches!(plan(elsewhere, "use x"), Plan::Write(_)));
    }

    #[test]
    fn section_rules_are_read_in_order() {
        let doc_text = "## Learned Rules & Patterns\n- **Rule**: One\n**Rule:** Two\n  continued\n```\n- **Rule**: fenced\n```\n## X\n- **Rule**: outside\n";
        let doc = Doc::parse(doc_text.as_bytes());
        let section = doc.section().unwrap();
        assert_eq!(doc.section_rules(&section), vec!["One", "Two continued"]);
    }

    #[test]
    fn entry_validation() {
        assert!(entry_lines("\n\n").is_err());
        assert!(entry_lines("- **Rule**: a\n## Injected\n").is_err());
        assert!(entry_lines("# Title\n").is_err());
        assert!(entry_lines("```\nopen fence\n").is_err());
        assert!(entry_lines("- a\n```\n## fine in code\n```\n").is_ok());
        assert_eq!(
            entry_lines("\n\r\n- a\r\n- b\r\n\n").unwrap(),
            vec!["- a", "- b"]
        );
        let rendered = render_entry(
            &Rule {
                category: Some("Cat".into()),
                rule: "r\n## x".into(),
                when: "w".into(),
                why: "y".into(),
            },
            "test failure",
            "2026-01-01 00:00",
        );
        assert!(entry_lines(&rendered).is_ok());
    }

    #[test]
    fn replace_keeps_every_byte_outside_the_body() {
        let old = "\u{feff}# P\r\n\r\n## Learned Rules & Patterns\r\n\r\n- **Rule**: a\r\n\r\n\r\n## Other\r\nx";
        let snap = snapshot(old.as_bytes());
        assert_eq!(snap.body.as_deref(), Some("\n- **Rule**: a\n"));
        let new = String::from_utf8(plan_replace(Some(old.as_bytes()), "\nnew body\n")).unwrap();
        assert_eq!(
            new,
            "\u{feff}# P\r\n\r\n## Learned Rules & Patterns\r\n\r\nnew body\r\n\r\n\r\n## Other\r\nx"
        );
        // Outside counts: the lines before the heading and from the blank lines on.
        assert_eq!(snap.outside_lines, 2 + 4);
        // A missing section is appended; an empty file gets just the section.
        let new = plan_replace(Some(b"text"), "\nb\n");
        assert_eq!(new, b"text\n\n## Learned Rules & Patterns\n\nb\n");
        assert_eq!(
            plan_replace(None, "\nb\n"),
            b"## Learned Rules & Patterns\n\nb\n"
        );
        // Heading as the last line without a newline.
        let new = plan_replace(Some(b"## Learned Rules & Patterns"), "\nb\n");
        assert_eq!(new, b"## Learned Rules & Patterns\n\nb\n");
    }

    #[test]
    fn replace_refuses_a_stale_read_and_bodies_that_break_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CLAUDE.md");
        fs::write(&path, "# A\n\n## Learned Rules & Patterns\n\nold\n").unwrap();
        assert_eq!(
            replace_section_body(&path, Some("\nsomething else\n"), "\nnew\n").unwrap(),
            ReplaceOutcome::Changed
        );
        assert_eq!(
            replace_section_body(&path, Some("\nold\n"), "\nold\n").unwrap(),
            ReplaceOutcome::Unchanged
        );
        assert_eq!(
            replace_section_body(&path, Some("\nold\n"), "\nnew\n").unwrap(),
            ReplaceOutcome::Written
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# A\n\n## Learned Rules & Patterns\n\nnew\n"
        );
        for bad in ["\n## Injected\n", "\n```\nopen\n", "a\r\nb\n"] {
            assert!(matches!(
                replace_section_body(&path, Some("\nnew\n"), bad),
                Err(RulesFileError::InvalidEntry { .. })
            ));
        }
    }

    #[test]
    fn markdown_helpers() {
        assert_eq!(heading_level(b"## x"), Some(2));
        assert_eq!(heading_level(b"#"), Some(1));
        assert_eq!(heading_level(b"   # x"), Some(1));
        assert_eq!(heading_level(b"    # x"), None);
        assert_eq!(heading_level(b"#tag"), None);
        assert_eq!(fence_open(b"```rust"), Some((b'`', 3)));
        assert_eq!(fence_open(b"``x``"), None);
        assert!(fence_close(b"````  ", b'`', 3));
        assert!(!fence_close(b"``", b'`', 3));
        assert!(!fence_close(b"```rust", b'`', 3));
    }

    #[test]
    fn error_mapping_and_messages() {
        let p = Path::new("/x/CLAUDE.md");
        let e = io_error(
            Op::Write,
            p,
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(
            e,
            RulesFileError::PermissionDenied { op: "write", .. }
        ));
        assert_eq!(e.to_string(), "write /x/CLAUDE.md: permission denied");
        let e = io_error(Op::Write, p, io::Error::other("No space left on device"));
        assert_eq!(e.to_string(), "write /x/CLAUDE.md");
        assert!(std::error::Error::source(&e).is_some());
        let e = io_error(Op::Read, p, io::Error::from(io::ErrorKind::IsADirectory));
        assert!(matches!(e, RulesFileError::IsDirectory { .. }));
    }
}
