//! A store that cannot be read: what is wrong with it, its backups, and the ways out
//! (`promptloop store check | repair | reset`). A damaged file is only ever moved aside,
//! never deleted or written to.
//!
//! Backups sit beside the database: `promptloop.db.bak`, refreshed when a store is opened and
//! the backup is more than a day old, and `promptloop.db.v<N>.bak`, taken before the schema is
//! migrated up from version N. Both are written with `VACUUM INTO` (a consistent copy, even
//! while another process writes) to a temporary file that is then renamed into place, so a
//! backup is always whole; a store that cannot be read whole never replaces the last backup.
//!
//! What `repair` can do: copy every row SQLite can still read, table by table, into a new
//! database with the current schema (scanning in key order and resuming past an unreadable
//! stretch where the table's index pages still lead there), then add the rows of the newest
//! backup that the damaged file no longer had, and rebuild the token index from the rules.
//! Rows on damaged pages that the backup does not hold are lost; the damaged file is kept.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, params_from_iter};
use serde::Serialize;

use super::dedup::{self, Analysis};
use super::{SqliteStore, StoreError, migrate};

/// How old the rolling backup may get before an open refreshes it.
const BACKUP_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether SQLite's error says the file is damaged or not a database.
pub fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// The error for a failed open: [`StoreError::Damaged`] when the file is damaged.
pub(crate) fn open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    if is_damage(&source) {
        let cause = match read_header(path) {
            Ok(Ok(h)) if h.cut_short() => format!("{source} ({})", cut_short(&h)),
            Ok(Err(HeaderProblem::Short(n))) => format!("{source} ({})", too_short(n)),
            Ok(Err(HeaderProblem::NotSqlite)) => {
                format!("{source} (it does not start with a SQLite header)")
            }
            _ => source.to_string(),
        };
        StoreError::Damaged {
            path: path.to_path_buf(),
            cause,
            backup: newest_backup(path).map(|b| b.path),
        }
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The words after a query error that says the file is damaged (empty otherwise).
pub(crate) fn damage_hint(e: &rusqlite::Error) -> &'static str {
    if is_damage(e) {
        "; the store's file is damaged: `promptloop store check` says what is wrong, \
         `promptloop store repair` recovers what can be read"
    } else {
        ""
    }
}

/// The message of [`StoreError::Damaged`]: what is wrong, where a backup is, what to do.
pub(crate) fn damaged_message(path: &Path, cause: &str, backup: Option<&Path>) -> String {
    let backup = match backup {
        Some(b) => {
            let when = fs::metadata(b)
                .and_then(|m| m.modified())
                .map(|t| format!(" from {}", local_time(t)))
                .unwrap_or_default();
            format!("a backup{when} is at {}", b.display())
        }
        None => "there is no backup beside it".to_string(),
    };
    let target = target_args(path);
    format!(
        "open the rule store {}: {cause}; {backup}. `promptloop store check{target}` shows \
         what is wrong; `promptloop store repair{target}` moves the file aside and recovers \
         what can be read (and what the backup has) into a new store; `promptloop store \
         reset{target}` moves it aside and starts an empty one. Neither deletes it.",
        path.display()
    )
}

/// ` -d <project>` for a project's store, ` --global` for the user's.
fn target_args(path: &Path) -> String {
    let project = path
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == super::DIR_NAME))
        .and_then(Path::parent);
    match project {
        Some(dir) if dir.as_os_str().is_empty() => String::new(),
        Some(dir) => format!(" -d {}", dir.display()),
        None => " --global".to_string(),
    }
}

fn local_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// What the first 100 bytes of a SQLite file say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Bytes per page.
    pub page_size: u32,
    /// Pages the header says the file has, when that field is valid.
    pub pages: Option<u32>,
    /// The file's length.
    pub file_bytes: u64,
}

impl Header {
    /// The header promises more pages than the file holds.
    pub fn cut_short(&self) -> bool {
        self.pages
            .is_some_and(|p| u64::from(p) * u64::from(self.page_size) > self.file_bytes)
    }
}

fn cut_short(h: &Header) -> String {
    format!(
        "the file was cut short: it has {} bytes, its header says {} pages of {} bytes",
        h.file_bytes,
        h.pages.unwrap_or(0),
        h.page_size
    )
}

fn too_short(n: u64) -> String {
    format!("the file was cut short: {n} bytes, less than a database header")
}

/// Why the header cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// An empty file (SQLite treats it as a new, empty database).
    Empty,
    /// Shorter than the 100-byte header.
    Short(u64),
    /// No `SQLite format 3` signature.
    NotSqlite,
}

/// Reads the header of the file at `path`.
pub fn read_header(path: &Path) -> std::io::Result<Result<Header, HeaderProblem>> {
    let mut file = fs::File::open(path)?;
    let file_bytes = file.metadata()?.len();
    let mut head = vec![0u8; file_bytes.min(100) as usize];
    file.read_exact(&mut head)?;
    Ok(parse_header(&head, file_bytes))
}

/// [`read_header`] of a whole file in memory.
fn read_header_bytes(db: &[u8]) -> std::io::Result<Result<Header, HeaderProblem>> {
    Ok(parse_header(&db[..db.len().min(100)], db.len() as u64))
}

fn parse_header(head: &[u8], file_bytes: u64) -> Result<Header, HeaderProblem> {
    if file_bytes == 0 {
        return Err(HeaderProblem::Empty);
    }
    let magic = b"SQLite format 3\0";
    let n = head.len().min(magic.len());
    if head[..n] != magic[..n] {
        return Err(HeaderProblem::NotSqlite);
    }
    if head.len() < 100 {
        return Err(HeaderProblem::Short(file_bytes));
    }
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65_536,
        n => u32::from(n),
    };
    // The page count is valid when the change counter matches "version valid for".
    let pages = (be32(28) > 0 && be32(24) == be32(92)).then(|| be32(28));
    Ok(Header {
        page_size,
        pages,
        file_bytes,
    })
}

/// Refuses a file that was cut short: its header promises more pages than it has and
/// SQLite's `quick_check` confirms the damage (during another process's checkpoint the
/// header can run ahead of the file for a moment; SQLite then still reads it whole).
pub(crate) fn check_length(path: &Path, conn: &Connection) -> Result<(), StoreError> {
    let cause = match read_header(path) {
        Ok(Ok(h)) if h.cut_short() => cut_short(&h),
        Ok(Err(HeaderProblem::Short(n))) => too_short(n),
        _ => return Ok(()),
    };
    let problems = quick_check(conn);
    if problems.is_empty() {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: path.to_path_buf(),
        cause: format!("{cause} ({})", problems.join("; ")),
        backup: newest_backup(path).map(|b| b.path),
    })
}

/// `PRAGMA quick_check`'s problems (empty: none); an error running it is one.
fn quick_check(conn: &Connection) -> Vec<String> {
    pragma_check(conn, "quick_check")
}

fn pragma_check(conn: &Connection, pragma: &str) -> Vec<String> {
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&format!("PRAGMA {pragma}(20)"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    match run() {
        Ok(lines) if lines == ["ok"] => Vec::new(),
        Ok(lines) => lines,
        Err(e) => vec![e.to_string()],
    }
}

/// One backup beside a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Backup {
    /// The file.
    pub path: PathBuf,
    /// When it was written (local time).
    pub modified: Option<String>,
    /// Its size.
    pub bytes: u64,
    #[serde(skip)]
    mtime: Option<SystemTime>,
}

/// The backups beside the store at `path`, newest first.
pub fn backups(path: &Path) -> Vec<Backup> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Backup> = entries
        .flatten()
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|rest| rest.ends_with("bak") && !rest.contains("tmp"))
            })
        })
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            let mtime = meta.modified().ok();
            Some(Backup {
                path: e.path(),
                modified: mtime.map(local_time),
                bytes: meta.len(),
                mtime,
            })
        })
        .collect();
    out.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| b.path.cmp(&a.path)));
    out
}

/// The newest backup, if any.
pub fn newest_backup(path: &Path) -> Option<Backup> {
    backups(path).into_iter().next()
}

/// A consistent copy of the open database at `to`, through a temporary file renamed into
/// place.
fn vacuum_into(conn: &Connection, to: &Path) -> Result<(), rusqlite::Error> {
    let tmp = to.with_file_name(format!(
        "{}.tmp-{}",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("backup"),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let result = conn
        .execute("VACUUM INTO ?1", [tmp.to_string_lossy().as_ref()])
        .map(|_| ())
        .and_then(|()| {
            fs::rename(&tmp, to).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The backup taken before migrating the store at `path` up from schema version `from`.
pub fn migration_backup_path(path: &Path, from: i64) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("promptloop.db");
    path.with_file_name(format!("{name}.v{from}.bak"))
}

/// Copies the store before its schema is migrated up from `from` (kept if one exists).
pub(crate) fn backup_before_migration(
    conn: &Connection,
    path: &Path,
    from: i64,
) -> Result<(), rusqlite::Error> {
    let to = migration_backup_path(path, from);
    if to.exists() {
        return Ok(());
    }
    vacuum_into(conn, &to)
}

/// The rolling backup's path: `promptloop.db.bak`.
pub fn rolling_backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("promptloop.db");
    path.with_file_name(format!("{name}.bak"))
}

/// Refreshes the rolling backup when it is missing or more than a day old. Best effort: a
/// backup that cannot be written leaves the previous one and does not stop the open.
pub(crate) fn refresh_backup(conn: &Connection, path: &Path) {
    let to = rolling_backup_path(path);
    let fresh = fs::metadata(&to)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < BACKUP_EVERY);
    if !fresh {
        let _ = vacuum_into(conn, &to);
    }
}

/// What `promptloop store check` found.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The database file.
    pub path: PathBuf,
    /// `healthy`, `missing`, `damaged` or `newer_schema`.
    pub verdict: Verdict,
    /// The file's size.
    pub bytes: Option<u64>,
    /// What is wrong (SQLite's messages, the header's).
    pub problems: Vec<String>,
    /// Its schema version.
    pub schema_version: Option<i64>,
    /// The newest this promptloop knows.
    pub known_version: i64,
    /// Rows: `rules.active`, `failures.pending`, `runs`, `events`, …
    pub counts: BTreeMap<String, i64>,
    /// Backups beside it, newest first.
    pub backups: Vec<Backup>,
}

/// The state of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Readable, schema known, integrity check passed.
    Healthy,
    /// No file yet.
    Missing,
    /// Not a database, cut short, or failing the integrity check.
    Damaged,
    /// Written by a newer promptloop; left as it is.
    NewerSchema,
}

/// Checks the store at `path` without writing to it: header, `integrity_check`, schema
/// version, counts.
pub fn check(path: &Path) -> CheckReport {
    let mut report = CheckReport {
        path: path.to_path_buf(),
        verdict: Verdict::Healthy,
        bytes: fs::metadata(path).ok().map(|m| m.len()),
        problems: Vec::new(),
        schema_version: None,
        known_version: migrate::latest(),
        counts: BTreeMap::new(),
        backups: backups(path),
    };
    if report.bytes.is_none() {
        report.verdict = Verdict::Missing;
        return report;
    }
    match read_header(path) {
        Ok(Ok(h)) if h.cut_short() => report.problems.push(cut_short(&h)),
        Ok(Err(HeaderProblem::Short(n))) => report.problems.push(too_short(n)),
        Ok(Err(HeaderProblem::NotSqlite)) => report
            .problems
            .push("the file does not start with a SQLite header".to_string()),
        Ok(_) => {}
        Err(e) => report.problems.push(format!("read the file: {e}")),
    }
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => {
            report.problems.push(e.to_string());
            report.verdict = Verdict::Damaged;
            return report;
        }
    };
    match migrate::version(&conn) {
        Ok(v) => report.schema_version = Some(v),
        Err(e) => {
            report.problems.push(e.to_string());
            report.verdict = Verdict::Damaged;
            return report;
        }
    }
    report
        .problems
        .extend(pragma_check(&conn, "integrity_check"));
    for (name, sql) in COUNTS {
        match conn.query_row(sql, [], |r| r.get::<_, i64>(0)) {
            Ok(n) => {
                report.counts.insert((*name).to_string(), n);
            }
            // An empty new database has no tables yet: nothing to count.
            Err(_) if report.schema_version == Some(0) => {}
            Err(e) => report.problems.push(format!("count {name}: {e}")),
        }
    }
    report.verdict = if !report.problems.is_empty() {
        Verdict::Damaged
    } else if report.schema_version.is_some_and(|v| v > migrate::latest()) {
        Verdict::NewerSchema
    } else {
        Verdict::Healthy
    };
    report
}

const COUNTS: &[(&str, &str)] = &[
    (
        "rules.active",
        "SELECT COUNT(*) FROM rules WHERE status = 'active'",
    ),
    (
        "rules.proposed",
        "SELECT COUNT(*) FROM rules WHERE status = 'proposed'",
    ),
    (
        "rules.retired",
        "SELECT COUNT(*) FROM rules WHERE status = 'retired'",
    ),
    (
        "failures.pending",
        "SELECT COUNT(*) FROM failures WHERE status = 'pending'",
    ),
    (
        "failures.learned",
        "SELECT COUNT(*) FROM failures WHERE status = 'learned'",
    ),
    ("runs", "SELECT COUNT(*) FROM runs"),
    ("events", "SELECT COUNT(*) FROM events"),
    ("file_changes", "SELECT COUNT(*) FROM file_changes"),
];

/// Moves the store at `path` (with its `-wal` and `-shm` files) to
/// `<path>.<why>-<time>`; returns the new path. Nothing is deleted.
pub fn move_aside(path: &Path, why: &str) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("promptloop.db")
        .to_string();
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let mut to = path.with_file_name(format!("{name}.{why}-{stamp}"));
    let mut n = 2;
    while to.exists() {
        to = path.with_file_name(format!("{name}.{why}-{stamp}-{n}"));
        n += 1;
    }
    fs::rename(path, &to)?;
    for suffix in ["-wal", "-shm"] {
        let from = path.with_file_name(format!("{name}{suffix}"));
        if from.exists() {
            let dest = to.with_file_name(format!(
                "{}{suffix}",
                to.file_name().and_then(|n| n.to_str()).unwrap_or_default()
            ));
            fs::rename(&from, dest)?;
        }
    }
    Ok(to)
}

/// Why `repair` or `reset` would not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// There is no store.
    #[error("there is no store at {}", .0.display())]
    Missing(PathBuf),
    /// The store is fine and `force` was not given.
    #[error("the store {} is healthy; nothing to do (--force does it anyway)", .0.display())]
    Healthy(PathBuf),
    /// A newer promptloop's store.
    #[error(
        "the store {} has schema version {found}, newer than the {known} this promptloop \
         knows: upgrade promptloop; the file was left untouched",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The file could not be moved aside.
    #[error("move {} aside: {source}", path.display())]
    Move {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The new store could not be made or filled.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refuses a missing, newer or (without `force`) healthy store; returns its check.
fn may_fix(path: &Path, force: bool) -> Result<CheckReport, FixError> {
    let found = check(path);
    match found.verdict {
        Verdict::Missing => Err(FixError::Missing(path.to_path_buf())),
        Verdict::NewerSchema => Err(FixError::NewerSchema {
            path: path.to_path_buf(),
            found: found.schema_version.unwrap_or_default(),
            known: migrate::latest(),
        }),
        Verdict::Healthy if !force => Err(FixError::Healthy(path.to_path_buf())),
        _ => Ok(found),
    }
}

/// What `reset` did.
#[derive(Clone, Debug, Serialize)]
pub struct ResetReport {
    /// The store, now new and empty.
    pub path: PathBuf,
    /// Where the old file went.
    pub moved_to: PathBuf,
    /// What the check found before.
    pub problems: Vec<String>,
}

/// Moves the store aside and creates an empty one in its place.
pub fn reset(path: &Path, force: bool) -> Result<ResetReport, FixError> {
    let found = may_fix(path, force)?;
    let moved_to = move_aside(path, "reset").map_err(|source| FixError::Move {
        path: path.to_path_buf(),
        source,
    })?;
    drop(SqliteStore::open(path)?);
    Ok(ResetReport {
        path: path.to_path_buf(),
        moved_to,
        problems: found.problems,
    })
}

/// Rows recovered into one table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TableRecovery {
    /// The table.
    pub table: String,
    /// Rows read from the damaged file.
    pub from_damaged: u64,
    /// Rows the damaged file no longer had, added from the backup.
    pub from_backup: u64,
    /// Read errors met in the damaged file (each is a stretch skipped).
    pub read_errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
}

/// What `repair` did.
#[derive(Clone, Debug, Serialize)]
pub struct RepairReport {
    /// The store, now rebuilt.
    pub path: PathBuf,
    /// Where the damaged file went.
    pub moved_to: PathBuf,
    /// What the check found before.
    pub problems: Vec<String>,
    /// Why the damaged file could not be opened as it is, if so.
    pub unreadable: Option<String>,
    /// Its rows were read through a copy with a new store's schema pages.
    pub schema_restored: bool,
    /// The backup whose rows were added, if any.
    pub backup: Option<PathBuf>,
    /// Per table.
    pub tables: Vec<TableRecovery>,
    /// The new store's integrity check (`ok`).
    pub integrity: String,
}

/// Moves the damaged store aside, creates a new one and copies into it every row that can
/// still be read, then the backup's rows it lacks; rebuilds the token index.
pub fn repair(path: &Path, force: bool) -> Result<RepairReport, FixError> {
    let found = may_fix(path, force)?;
    let backup = newest_backup(path).map(|b| b.path);
    let moved_to = move_aside(path, "damaged").map_err(|source| FixError::Move {
        path: path.to_path_buf(),
        source,
    })?;
    drop(SqliteStore::open(path)?);
    let to = Connection::open(path).map_err(|e| open_error(path, e))?;
    let tables = table_names(&to).map_err(StoreError::Sqlite)?;
    let mut recovered: Vec<TableRecovery> = tables
        .iter()
        .map(|t| TableRecovery {
            table: t.clone(),
            ..TableRecovery::default()
        })
        .collect();
    let mut unreadable = None;
    let mut schema_restored = false;
    let tx = to.unchecked_transaction().map_err(StoreError::Sqlite)?;
    // When the file's own schema cannot be read, a copy of it with the schema pages of a
    // new store (the same pages: the schema and its tables' roots are laid out the same way
    // by every store this version creates) still leads to the rows that survive.
    let mut cut_off = Vec::new();
    let transplant = match open_read_only(&moved_to) {
        Ok(from) => Some((from, None)),
        Err(e) => {
            unreadable = Some(e.to_string());
            match with_new_schema(&moved_to) {
                Ok((from, tmp, lost)) => {
                    schema_restored = true;
                    cut_off = lost;
                    Some((from, Some(tmp)))
                }
                Err(_) => None,
            }
        }
    };
    if let Some((from, _tmp)) = &transplant {
        for r in &mut recovered {
            let (rows, errors, first) = copy_table(from, &tx, &r.table);
            r.from_damaged = rows;
            r.read_errors = errors;
            r.first_error = first;
            if cut_off.contains(&r.table) {
                r.read_errors += 1;
                r.first_error = Some("its root page was cut off the end of the file: its rows, if it had any, are lost".into());
            }
        }
    }
    drop(transplant);
    let backup_used = match backup.as_deref().map(open_read_only) {
        Some(Ok(from)) => {
            for r in &mut recovered {
                r.from_backup = copy_table(&from, &tx, &r.table).0;
            }
            backup
        }
        _ => None,
    };
    rebuild_index(&tx).map_err(StoreError::Sqlite)?;
    tx.commit().map_err(StoreError::Sqlite)?;
    let problems = pragma_check(&to, "integrity_check");
    Ok(RepairReport {
        path: path.to_path_buf(),
        moved_to,
        problems: found.problems,
        unreadable,
        schema_restored,
        backup: backup_used,
        tables: recovered,
        integrity: if problems.is_empty() {
            "ok".to_string()
        } else {
            problems.join("; ")
        },
    })
}

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Fails here, not half-way, when the file is no database at all.
    migrate::version(&conn)?;
    Ok(conn)
}

/// A temporary copy of the damaged file at `damaged` with the schema pages of a new store
/// written over its own (page 1, without a freelist, and the schema's other pages), opened
/// read-only. The copy is deleted when the returned file is dropped.
/// Also returns the tables whose root page lay past the end of the damaged file (they read
/// as empty: their rows are lost).
#[allow(clippy::type_complexity)]
fn with_new_schema(
    damaged: &Path,
) -> Result<(Connection, tempfile::NamedTempFile, Vec<String>), Box<dyn std::error::Error>> {
    let dir = damaged.parent().unwrap_or(Path::new("."));
    let fresh_file = tempfile::Builder::new()
        .prefix(".promptloop-schema-")
        .tempfile_in(dir)?;
    fs::remove_file(fresh_file.path())?;
    // Closing the last connection checkpoints the WAL: the pages are all in the file.
    drop(SqliteStore::open(fresh_file.path())?);
    let roots: Vec<(String, i64)> = {
        let conn = Connection::open(fresh_file.path())?;
        let mut stmt = conn.prepare(
            "SELECT name, rootpage FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%'",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let fresh = fs::read(fresh_file.path())?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", fresh_file.path().display()));
    }
    let Ok(Ok(header)) = read_header_bytes(&fresh) else {
        return Err("a new store has no readable header".into());
    };
    let page = header.page_size as usize;
    let mut bytes = fs::read(damaged)?;
    bytes.truncate(bytes.len() / page * page);
    let kept_pages = (bytes.len() / page) as i64;
    let cut_off: Vec<String> = roots
        .into_iter()
        .filter(|(_, root)| *root > kept_pages)
        .map(|(name, _)| name)
        .collect();
    // Pages lost off the end that a new store has (its tables' empty roots) come from it,
    // so those tables read as empty instead of failing the whole schema.
    if bytes.len() < fresh.len() {
        let end = bytes.len();
        bytes.extend_from_slice(&fresh[end..]);
    }
    for n in schema_pages(&fresh, page) {
        let at = (n as usize - 1) * page;
        if bytes.len() < at + page {
            bytes.resize(at + page, 0);
        }
        bytes[at..at + page].copy_from_slice(&fresh[at..at + page]);
    }
    let pages = (bytes.len() / page) as u32;
    bytes[28..32].copy_from_slice(&pages.to_be_bytes());
    // No freelist, and the rollback-journal format: the copy has no WAL.
    bytes[32..40].fill(0);
    bytes[18] = 1;
    bytes[19] = 1;
    let mut copy = tempfile::Builder::new()
        .prefix(".promptloop-recover-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut copy, &bytes)?;
    let conn = open_read_only(copy.path())?;
    Ok((conn, copy, cut_off))
}

/// Page 1 and the pages of the schema's b-tree below it.
fn schema_pages(db: &[u8], page: usize) -> Vec<u32> {
    let mut out = vec![1u32];
    let mut todo = vec![1u32];
    while let Some(n) = todo.pop() {
        let start = (n as usize - 1) * page + if n == 1 { 100 } else { 0 };
        let Some(p) = db.get(start..(n as usize) * page) else {
            continue;
        };
        // 0x05: an interior table page; its cells start with the left child's number.
        if p.first() != Some(&0x05) || p.len() < 12 {
            continue;
        }
        let base = (n as usize - 1) * page;
        let be16 = |b: &[u8], at: usize| {
            b.get(at..at + 2)
                .map_or(0, |x| usize::from(u16::from_be_bytes([x[0], x[1]])))
        };
        let be32 = |b: &[u8], at: usize| {
            b.get(at..at + 4)
                .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        };
        let cells = be16(p, 3);
        let mut children = vec![be32(p, 8)];
        for i in 0..cells {
            let cell = be16(p, 12 + 2 * i);
            children.push(be32(db, base + cell));
        }
        for c in children {
            if c > 1 && !out.contains(&c) && (c as usize) * page <= db.len() {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// The tables of the current schema, in creation order.
fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Column names of `table` and, for a table without rowid, its key columns in order.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<(Vec<String>, Vec<String>)> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let mut cols = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(1)?;
        let key: i64 = row.get(5)?;
        if key > 0 {
            pk.push((key, name.clone()));
        }
        cols.push(name);
    }
    pk.sort();
    Ok((cols, pk.into_iter().map(|(_, n)| n).collect()))
}

fn without_rowid(conn: &Connection, table: &str) -> bool {
    conn.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, String>(0),
    )
    .is_ok_and(|sql| sql.to_ascii_uppercase().contains("WITHOUT ROWID"))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Copies the rows of `table` that `from` can read into `to` (`INSERT OR IGNORE`: rows
/// already there win). Scans in key order; after a read error it resumes past the last key
/// read, and in a rowid table it then jumps ahead (1, 2, 4, … rows) until it finds rows
/// again, so one damaged page costs only the rows on it. Returns (rows copied, read errors,
/// the first error).
fn copy_table(from: &Connection, to: &Connection, table: &str) -> (u64, u64, Option<String>) {
    let (mut copied, mut errors, mut first) = (0u64, 0u64, None);
    let Ok((target_cols, _)) = columns(to, table) else {
        return (0, 0, None);
    };
    let (source_cols, source_pk) = match columns(from, table) {
        Ok(c) if !c.0.is_empty() => c,
        Ok(_) => return (0, 0, None),
        Err(e) => return (0, 1, Some(e.to_string())),
    };
    let cols: Vec<String> = target_cols
        .into_iter()
        .filter(|c| source_cols.contains(c))
        .collect();
    if cols.is_empty() {
        return (0, 0, None);
    }
    let rowid = !without_rowid(from, table);
    let key: Vec<String> = if rowid {
        vec!["rowid".to_string()]
    } else {
        source_pk
    };
    if key.is_empty() {
        return (0, 0, None);
    }
    let key_list = key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let col_list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let marks = vec!["?"; cols.len()].join(", ");
    let insert = format!(
        "INSERT OR IGNORE INTO {} ({col_list}) VALUES ({marks})",
        quote(table)
    );
    let key_marks = vec!["?"; key.len()].join(", ");
    let mut after: Option<Vec<Value>> = None;
    let mut jump: u32 = 0;
    loop {
        let sql = match &after {
            None => format!(
                "SELECT {key_list}, {col_list} FROM {} ORDER BY {key_list}",
                quote(table)
            ),
            Some(_) => format!(
                "SELECT {key_list}, {col_list} FROM {} WHERE ({key_list}) > ({key_marks}) \
                 ORDER BY {key_list}",
                quote(table)
            ),
        };
        let mut progressed = false;
        let outcome: rusqlite::Result<()> = (|| {
            let mut stmt = from.prepare(&sql)?;
            let mut rows = match &after {
                None => stmt.query([])?,
                Some(k) => stmt.query(params_from_iter(k.iter()))?,
            };
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(key.len() + cols.len());
                for i in 0..key.len() + cols.len() {
                    values.push(row.get::<_, Value>(i)?);
                }
                let (k, v) = values.split_at(key.len());
                // A row the new database refuses (a damaged value breaking a constraint)
                // is skipped, not fatal.
                if to.execute(&insert, params_from_iter(v.iter())).unwrap_or(0) > 0 {
                    copied += 1;
                }
                after = Some(k.to_vec());
                progressed = true;
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => break,
            Err(e) => {
                errors += 1;
                first.get_or_insert_with(|| e.to_string());
                if progressed {
                    jump = 0;
                    continue;
                }
                // No row read since the last error: jump ahead in a rowid table, or stop.
                let last = match after.as_deref() {
                    Some([Value::Integer(n)]) => *n,
                    None if rowid => 0,
                    _ => break,
                };
                if !rowid || jump >= 62 || errors > 10_000 {
                    break;
                }
                after = Some(vec![Value::Integer(last.saturating_add(1i64 << jump))]);
                jump += 1;
            }
        }
    }
    (copied, errors, first)
}

/// Makes the token index match the rules again: `rule_tokens` from each rule's features
/// (analysed anew when they cannot be read), `token_df` from `rule_tokens`, and no targets
/// of rules that are gone.
fn rebuild_index(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("DELETE FROM rule_tokens; DELETE FROM token_df;")?;
    let rules: Vec<(String, String, String, String)> = {
        let mut stmt = conn.prepare("SELECT id, features, rule, \"when\" FROM rules")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, features, text, when) in rules {
        let features = match Analysis::decode(&features) {
            Some(f) => f,
            None => {
                let f = dedup::analyse(&text, &when);
                conn.execute(
                    "UPDATE rules SET features = ?2 WHERE id = ?1",
                    [&id, &f.encode()],
                )?;
                f
            }
        };
        for token in features.tokens() {
            conn.execute(
                "INSERT OR IGNORE INTO rule_tokens(token, rule_id) VALUES (?1, ?2)",
                [token, &id],
            )?;
        }
    }
    conn.execute_batch(
        "INSERT INTO token_df(token, df) SELECT token, COUNT(*) FROM rule_tokens GROUP BY token;
         DELETE FROM rule_targets WHERE rule_id NOT IN (SELECT id FROM rules);",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_backup_is_a_whole_copy_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("promptloop.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
            .unwrap();
        backup_before_migration(&conn, &path, 1).unwrap();
        let copy = migration_backup_path(&path, 1);
        let n: i64 = Connection::open(&copy)
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 42);
        // Taken once: a second migration attempt keeps the first copy.
        conn.execute("UPDATE t SET x = 7", []).unwrap();
        backup_before_migration(&conn, &path, 1).unwrap();
        let n: i64 = Connection::open(&copy)
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 42);
        assert_eq!(newest_backup(&path).map(|b| b.path), Some(copy));
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn headers_tell_a_cut_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("promptloop.db");
        drop(SqliteStore::open(&path).unwrap());
        let whole = read_header(&path).unwrap().unwrap();
        assert!(!whole.cut_short(), "{whole:?}");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read_header(&path).unwrap().unwrap().cut_short());
        fs::write(&path, &bytes[..50]).unwrap();
        assert_eq!(read_header(&path).unwrap(), Err(HeaderProblem::Short(50)));
        fs::write(&path, b"not a database, just text that is long enough to fill a header of one hundred bytes or more....").unwrap();
        assert_eq!(read_header(&path).unwrap(), Err(HeaderProblem::NotSqlite));
    }
}
