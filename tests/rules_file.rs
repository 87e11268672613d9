//! End-to-end tests of the rules-file writer on a real filesystem: byte-exact
//! preservation, dedup, symlinks, permissions, errors, concurrent writers
//! (threads and processes) and crashes (SIGKILL mid-write).
//!
//! Child processes re-run this test binary with `PROMPTLOOP_RULES_CHILD` set,
//! selecting `child_helper`, which does nothing in a normal run.

use promptloop::rules::{
    AddOutcome, Rule, RulesFileError, SECTION_HEADING, add_entry, parse_answer, read_section_rules,
    render_entry,
};
use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "PROMPTLOOP_RULES_CHILD";
const LEARNED_AT: &str = "2026-11-24 21:40";

fn rule(text: &str) -> Rule {
    Rule {
        category: Some("Testing".into()),
        rule: text.into(),
        when: format!("When {text} applies"),
        why: format!("Because {text} matters"),
    }
}

fn entry(rule: &Rule) -> String {
    render_entry(rule, "test failure", LEARNED_AT)
}

fn add(path: &Path, text: &str) -> Result<AddOutcome, RulesFileError> {
    let r = rule(text);
    add_entry(path, &r, &entry(&r))
}

/// Asserts that `new` is `old` plus one contiguous run of inserted bytes,
/// i.e. every byte of `old` is still there, in order, untouched.
fn assert_pure_insertion(old: &[u8], new: &[u8]) {
    assert!(new.len() > old.len(), "nothing was inserted");
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(
        prefix + suffix >= old.len(),
        "user bytes changed: common prefix {prefix} + suffix {suffix} < {}",
        old.len()
    );
}

fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// The rules of the section, each entry re-parsed from the file text.
fn parsed_entries(path: &Path) -> Vec<Rule> {
    let text = fs::read_to_string(path).unwrap();
    let start = text.find(SECTION_HEADING).unwrap() + SECTION_HEADING.len();
    let section = &text[start..];
    let end = section.find("\n## ").unwrap_or(section.len());
    section[..end]
        .split("\n\n")
        .filter(|chunk| chunk.contains("**Rule**"))
        .map(|chunk| {
            let parsed = parse_answer(chunk).unwrap();
            assert_eq!(chunk.trim(), entry(&parsed).trim(), "entry not intact");
            parsed
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Child processes

/// The helper run in child processes; a no-op in a normal test run.
#[test]
fn child_helper() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(std::env::var("RULES_PATH").unwrap());
    match mode.as_str() {
        // Concurrent writer: wait for the go signal, then add its rules.
        "add" => {
            let worker: usize = std::env::var("RULES_WORKER").unwrap().parse().unwrap();
            let go = PathBuf::from(std::env::var("RULES_GO").unwrap());
            while !go.exists() {
                thread::sleep(Duration::from_millis(1));
            }
            for i in 0..RULES_PER_WORKER {
                assert_eq!(
                    add(&path, &format!("worker {worker} rule {i}")).unwrap(),
                    AddOutcome::Added
                );
            }
            add(&path, "shared rule").unwrap();
        }
        // Crash victim: add rules in order until killed.
        "loop" => {
            for i in 0..CRASH_RULES {
                add(&path, &crash_rule(i)).unwrap();
            }
        }
        // Runs under `ulimit -f`: the write must fail cleanly.
        "fsize" => {
            let err = add(&path, "too big to fit").unwrap_err();
            assert!(
                matches!(err, RulesFileError::Write { .. }),
                "expected a write error, got {err:?}"
            );
            println!(
                "CHILD-OK {err}: {}",
                std::error::Error::source(&err).unwrap()
            );
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn child(mode: &str, path: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "rules_file::child_helper",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode)
    .env("RULES_PATH", path)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

// ---------------------------------------------------------------------------
// Preservation, creation, dedup

const USER_FILE: &str = "\u{feff}# My Project\r\n\r\nIntro with\ttabs and ünïcödé 🦀  \r\n\r\n```markdown\r\n## Learned Rules & Patterns\r\n- **Rule**: fenced example, not a rule\r\n```\r\n\r\n## Learned Rules & Patterns\r\n\r\n### Old\r\n- **Rule**: Existing rule\r\n- **When**: w\r\n- **Why**: y\r\n\r\n## Build\r\n\r\nRun `make`.\r\n\r\n# Appendix\r\nlast line without newline";

#[test]
fn crlf_bom_file_section_in_the_middle_is_preserved_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    fs::write(&path, USER_FILE).unwrap();
    let mut before = fs::read(&path).unwrap();
    for text in ["First new rule", "Second new rule"] {
        assert_eq!(add(&path, text).unwrap(), AddOutcome::Added);
        let after = fs::read(&path).unwrap();
        assert_pure_insertion(&before, &after);
        before = after;
    }
    let text = fs::read_to_string(&path).unwrap();
    let expected_insert = format!(
        "\r\n\r\n{}\r\n",
        entry(&rule("First new rule"))
            .trim_end()
            .replace('\n', "\r\n")
    );
    // Inserted right after the section's last line, before `## Build`.
    let at = USER_FILE.find("- **Why**: y\r\n").unwrap() + "- **Why**: y".len();
    assert!(text[at..].starts_with(&expected_insert));
    assert!(text.ends_with(
        "\r\n\r\n## Build\r\n\r\nRun `make`.\r\n\r\n# Appendix\r\nlast line without newline"
    ));
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "bare LF in a CRLF file"
    );
    assert_eq!(
        read_section_rules(&path).unwrap(),
        vec!["Existing rule", "First new rule", "Second new rule"]
    );
}

#[test]
fn missing_section_is_appended_and_missing_file_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    let user = "# Notes\n\n```\n## Learned Rules & Patterns\n```\nlast";
    fs::write(&path, user).unwrap();
    add(&path, "A rule").unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!("{user}\n\n{SECTION_HEADING}\n\n{}", entry(&rule("A rule")))
    );

    let nested = dir.path().join("a/b/CLAUDE.md");
    assert_eq!(add(&nested, "A rule").unwrap(), AddOutcome::Added);
    assert_eq!(
        fs::read_to_string(&nested).unwrap(),
        format!("{SECTION_HEADING}\n\n{}", entry(&rule("A rule")))
    );
    // A new file gets the umask's default mode, not tempfile's 0o600.
    let probe = dir.path().join("probe");
    fs::File::create(&probe).unwrap();
    assert_eq!(
        fs::metadata(&nested).unwrap().mode() & 0o7777,
        fs::metadata(&probe).unwrap().mode() & 0o7777
    );
}

#[test]
fn identical_rule_is_already_present_and_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    fs::write(
        &path,
        "# P\n\n## Learned Rules & Patterns\n\n- **Rule**: Always return `None` (not 0).\n",
    )
    .unwrap();
    let before = fs::metadata(&path).unwrap();
    let bytes = fs::read(&path).unwrap();
    thread::sleep(Duration::from_millis(20));
    let dup = Rule {
        category: None,
        rule: "  ALWAYS return **None**\n(not 0)  ".into(),
        when: "w".into(),
        why: "y".into(),
    };
    assert_eq!(
        add_entry(&path, &dup, &render_entry(&dup, "test failure", LEARNED_AT)).unwrap(),
        AddOutcome::AlreadyPresent
    );
    let after = fs::metadata(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert_eq!(after.ino(), before.ino(), "file was replaced");
    // Adding the same rule twice through the API also dedups.
    assert_eq!(add(&path, "New one").unwrap(), AddOutcome::Added);
    assert_eq!(
        add(&path, "new   ONE.").unwrap(),
        AddOutcome::AlreadyPresent
    );
}

// ---------------------------------------------------------------------------
// Symlinks, permissions, errors

#[test]
fn symlink_is_written_through_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let project = dir.path().join("project");
    fs::create_dir_all(&shared).unwrap();
    fs::create_dir_all(&project).unwrap();
    let agents = shared.join("AGENTS.md");
    fs::write(&agents, "# Agents\n").unwrap();
    let link = project.join("CLAUDE.md");
    std::os::unix::fs::symlink("../shared/AGENTS.md", &link).unwrap();
    // A chain: LINK2 → CLAUDE.md → ../shared/AGENTS.md
    let link2 = project.join("LINK2.md");
    std::os::unix::fs::symlink("CLAUDE.md", &link2).unwrap();

    assert_eq!(add(&link, "Via link").unwrap(), AddOutcome::Added);
    assert_eq!(add(&link2, "Via chain").unwrap(), AddOutcome::Added);
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::symlink_metadata(&link2)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        read_section_rules(&agents).unwrap(),
        vec!["Via link", "Via chain"]
    );
    assert_eq!(add(&link2, "VIA LINK").unwrap(), AddOutcome::AlreadyPresent);

    // A dangling link: the target is created, the link kept.
    let dangling = project.join("DANGLING.md");
    std::os::unix::fs::symlink("new/TARGET.md", &dangling).unwrap();
    add(&dangling, "Created").unwrap();
    assert!(
        fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        read_section_rules(&project.join("new/TARGET.md")).unwrap(),
        vec!["Created"]
    );

    // A loop is an error, not a hang.
    let a = project.join("loop_a");
    std::os::unix::fs::symlink("loop_b", &a).unwrap();
    std::os::unix::fs::symlink("loop_a", project.join("loop_b")).unwrap();
    assert!(matches!(
        add(&a, "x"),
        Err(RulesFileError::SymlinkLoop { .. })
    ));
}

#[test]
fn permissions_are_preserved() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o640, 0o604, 0o600, 0o664] {
        let path = dir.path().join(format!("CLAUDE-{mode:o}.md"));
        fs::write(&path, "# P\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        add(&path, "Keep my mode").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, mode);
    }
}

#[test]
fn read_only_file_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    let user = "# P\n\n## Learned Rules & Patterns\n\n- **Rule**: Known\n";
    fs::write(&path, user).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let err = add(&path, "x").unwrap_err();
    assert!(matches!(err, RulesFileError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().starts_with("write "));
    assert_eq!(fs::read_to_string(&path).unwrap(), user);
    assert_eq!(add(&path, "known").unwrap(), AddOutcome::AlreadyPresent);
}

#[test]
fn directory_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = add(dir.path(), "x").unwrap_err();
    assert!(matches!(err, RulesFileError::IsDirectory { .. }), "{err:?}");
    assert!(matches!(
        read_section_rules(dir.path()),
        Err(RulesFileError::IsDirectory { .. })
    ));
    assert_eq!(
        read_section_rules(&dir.path().join("missing.md")).unwrap(),
        Vec::<String>::new()
    );
    // A parent that is a file: creating the directory fails.
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    assert!(matches!(
        add(&file.join("CLAUDE.md"), "x"),
        Err(RulesFileError::CreateDir { .. })
    ));
}

#[test]
fn permission_denied_in_unwritable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    let path = locked.join("CLAUDE.md");
    fs::write(&path, "# P\n").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(locked.join("probe"), "").is_ok() {
        eprintln!("skipped: running as root, directory modes are not enforced");
        return;
    }
    let err = add(&path, "x").unwrap_err();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        matches!(err, RulesFileError::PermissionDenied { op: "write", .. }),
        "{err:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), b"# P\n");
}

/// "Disk full" as the OS reports a failing write: the child runs under
/// `ulimit -f` with SIGXFSZ ignored, so its write fails with EFBIG part-way,
/// like ENOSPC would. The old file must be intact and no temp file left.
#[test]
fn failed_write_leaves_old_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    let user: String = (0..200)
        .map(|i| format!("line {i} of the user's text\n"))
        .collect();
    fs::write(&path, &user).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 2; exec \"$0\" --exact rules_file::child_helper --nocapture --test-threads=1")
        .arg(&exe)
        .env(CHILD_ENV, "fsize")
        .env("RULES_PATH", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK write"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), user);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["CLAUDE.md"], "temp file left behind");
}

// ---------------------------------------------------------------------------
// Concurrency

const WORKERS: usize = 8;
const RULES_PER_WORKER: usize = 4;

const CONCURRENT_USER_FILE: &str =
    "# Before\n\nuser text\n\n## Learned Rules & Patterns\n\n## After\n\nmore user text\n";

fn check_concurrent_result(path: &Path) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.starts_with("# Before\n\nuser text\n\n## Learned Rules & Patterns\n\n"));
    assert!(text.ends_with("\n\n## After\n\nmore user text\n"));
    let rules = read_section_rules(path).unwrap();
    let unique: BTreeSet<_> = rules.iter().cloned().collect();
    assert_eq!(unique.len(), rules.len(), "duplicated rule: {rules:?}");
    let mut expected: BTreeSet<String> = (0..WORKERS)
        .flat_map(|w| (0..RULES_PER_WORKER).map(move |i| format!("worker {w} rule {i}")))
        .collect();
    expected.insert("shared rule".into());
    assert_eq!(unique, expected, "lost rules");
    let parsed = parsed_entries(path);
    assert_eq!(parsed.len(), expected.len());
    for r in parsed {
        assert_eq!(r, rule(&r.rule));
    }
}

#[test]
fn eight_threads_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    fs::write(&path, CONCURRENT_USER_FILE).unwrap();
    let barrier = Arc::new(Barrier::new(WORKERS));
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let path = path.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for i in 0..RULES_PER_WORKER {
                    assert_eq!(
                        add(&path, &format!("worker {w} rule {i}")).unwrap(),
                        AddOutcome::Added
                    );
                }
                add(&path, "shared rule").unwrap()
            })
        })
        .collect();
    let outcomes: Vec<AddOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == AddOutcome::Added).count(),
        1
    );
    check_concurrent_result(&path);
}

#[test]
fn eight_processes_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    fs::write(&path, CONCURRENT_USER_FILE).unwrap();
    let go = dir.path().join("go");
    let children: Vec<Child> = (0..WORKERS)
        .map(|w| {
            child("add", &path)
                .env("RULES_WORKER", w.to_string())
                .env("RULES_GO", &go)
                .spawn()
                .unwrap()
        })
        .collect();
    // Start them together so their writes really overlap.
    thread::sleep(Duration::from_millis(200));
    fs::write(&go, "").unwrap();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::remove_file(&go).unwrap();
    check_concurrent_result(&path);
}

// ---------------------------------------------------------------------------
// Crash safety

const CRASH_RULES: usize = 100_000;
const CRASH_ROUNDS: usize = 25;

fn crash_rule(i: usize) -> String {
    format!("Crash rule number {i} with some padding text to make the write longer")
}

/// A child adding entries in a loop is SIGKILLed at random moments; after
/// each kill the file must be exactly one of the versions a clean run
/// produces (the initial file plus the first k entries), never torn.
#[test]
fn sigkill_mid_write_never_tears_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CLAUDE.md");
    let initial =
        "# Project\n\nSome user text.\n\n## Learned Rules & Patterns\n\n## Tail\nkeep me\n";
    fs::write(&path, initial).unwrap();

    // The reference versions, built on demand by a clean writer elsewhere.
    let ref_dir = tempfile::tempdir().unwrap();
    let ref_path = ref_dir.path().join("CLAUDE.md");
    fs::write(&ref_path, initial).unwrap();
    let mut versions: Vec<Vec<u8>> = vec![initial.as_bytes().to_vec()];

    let mut last_k = 0;
    let mut rounds_with_leftover_temp = 0;
    for _ in 0..CRASH_ROUNDS {
        let mut c = child("loop", &path).spawn().unwrap();
        // Let it get past start-up and into its write loop, then kill at a
        // random moment.
        let start = Instant::now();
        while read_section_rules(&path).unwrap().len() <= last_k
            && start.elapsed() < Duration::from_secs(10)
        {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_micros(random_u64() % 30_000));
        c.kill().unwrap(); // SIGKILL on Unix
        c.wait().unwrap();

        let bytes = fs::read(&path).unwrap();
        let rules = read_section_rules(&path).unwrap();
        let k = rules.len();
        assert!(k >= last_k, "entries were lost: {k} < {last_k}");
        let expected_rules: Vec<String> = (0..k).map(crash_rule).collect();
        assert_eq!(rules, expected_rules);
        while versions.len() <= k {
            add(&ref_path, &crash_rule(versions.len() - 1)).unwrap();
            versions.push(fs::read(&ref_path).unwrap());
        }
        assert!(
            bytes == versions[k],
            "file is not a clean version with {k} entries"
        );
        last_k = k;
        if fs::read_dir(dir.path()).unwrap().count() > 1 {
            rounds_with_leftover_temp += 1;
        }
    }
    assert!(last_k > 0, "the child never wrote anything");
    eprintln!(
        "{CRASH_ROUNDS} kills, {last_k} entries, {rounds_with_leftover_temp} kills left a temp file"
    );
    // The next writer removes temp files left by killed writers.
    add(&path, "after the crashes").unwrap();
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["CLAUDE.md"]);
}
