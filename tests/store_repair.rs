//! A damaged or newer-schema store (issue 11): every command that opens it says what is wrong
//! (SQLite's message, the header's), where a backup is and what to do; `promptloop store
//! check | repair | reset` work through it, and no file is ever deleted or changed in place.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Project, fake_agent};

fn db(p: &Project) -> PathBuf {
    p.path.join(".promptloop/promptloop.db")
}

/// Six rules and their failures, learned by hand with the offline teacher.
fn project_with_rules() -> Project {
    let p = Project::new();
    p.write("README.md", "app\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "x"]);
    for i in 1..=6 {
        let out = p
            .promptloop()
            .args([
                "report-failure",
                "-f",
                "planning_error",
                "--teacher",
                "offline",
            ])
            .arg("-D")
            .arg(format!(
                "Built a new service number {i} instead of extending the billing module {i}"
            ))
            .arg("-C")
            .arg(format!("Check for existing systems first, case {i}"))
            .output()
            .expect("report-failure");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    p
}

fn rule_ids(p: &Project) -> Vec<String> {
    let out = p
        .promptloop()
        .args(["rules", "list", "--json"])
        .output()
        .expect("rules list");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules: Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut ids: Vec<String> = rules
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// Runs `promptloop ARGS`; returns (exit code, stdout, stderr).
fn promptloop(p: &Project, args: &[&str]) -> (i32, String, String) {
    let out = p.promptloop().args(args).output().expect("promptloop");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_json(p: &Project) -> (i32, Value) {
    let (code, out, err) = promptloop(p, &["store", "check", "--json"]);
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}")),
    )
}

/// The files whose names start with `promptloop.db.<prefix>`.
fn aside(p: &Project, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(p.path.join(".promptloop"))
        .expect("record dir")
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            f.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("promptloop.db.{prefix}"))
                    && !n.ends_with("-wal")
                    && !n.ends_with("-shm")
            })
        })
        .collect();
    files.sort();
    files
}

fn says_what_to_do(message: &str, dir: &Path) {
    for part in [
        format!("`promptloop store check -d {}`", dir.display()),
        "`promptloop store repair".to_string(),
        "`promptloop store reset".to_string(),
        "Neither deletes it".to_string(),
    ] {
        assert!(message.contains(&part), "{part:?} missing from: {message}");
    }
}

#[test]
fn a_file_that_is_not_a_database_says_so_everywhere_and_repair_moves_it_aside() {
    let p = Project::new();
    p.write("app.txt", "x\n");
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "x"]);
    let junk = b"this is a text file someone saved over the store, not SQLite at all\n".repeat(40);
    p.write(".promptloop/promptloop.db", &String::from_utf8_lossy(&junk));

    let agent = fake_agent(p.home.path());
    let config = p.config(&format!("claude:\n  command: {}\n", agent.display()));
    let config = config.to_str().expect("utf-8 path");
    for args in [
        &["rules", "list"][..],
        &["history"],
        &[
            "report-failure",
            "-f",
            "planning_error",
            "-D",
            "x",
            "--teacher",
            "offline",
        ],
        &[
            "run",
            "do it",
            "-c",
            config,
            "--teacher",
            "offline",
            "--test-command",
            "true",
        ],
    ] {
        let (code, _, err) = promptloop(&p, args);
        assert_ne!(code, 0, "{args:?}");
        assert!(
            err.contains("file is not a database")
                && err.contains("it does not start with a SQLite header")
                && err.contains("there is no backup beside it"),
            "{args:?}: {err}"
        );
        says_what_to_do(&err, &p.path);
        assert_eq!(
            std::fs::read(db(&p)).expect("db"),
            junk,
            "{args:?} changed it"
        );
    }

    let (code, report) = check_json(&p);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "damaged", "{report:#}");
    assert!(
        report["problems"]
            .to_string()
            .contains("does not start with a SQLite header"),
        "{report:#}"
    );

    let (code, out, err) = promptloop(&p, &["store", "repair"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("moved the damaged store to"), "{out}");
    let moved = aside(&p, "damaged-");
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(&moved[0]).expect("aside"),
        junk,
        "the bad file changed"
    );
    assert_eq!(check_json(&p).1["verdict"], "healthy");
    assert!(rule_ids(&p).is_empty());
}

#[test]
fn a_truncated_store_is_named_and_repair_recovers_its_rows_and_the_backups() {
    let p = project_with_rules();
    let before = rule_ids(&p);
    assert_eq!(before.len(), 6);
    // A backup of the whole store (the rolling one is refreshed when missing).
    std::fs::remove_file(p.path.join(".promptloop/promptloop.db.bak")).expect("old backup");
    let (_, healthy) = check_json(&p);
    assert_eq!(healthy["verdict"], "healthy", "{healthy:#}");
    assert_eq!(rule_ids(&p), before);
    assert!(p.path.join(".promptloop/promptloop.db.bak").exists());
    let counts = healthy["counts"].clone();

    // Cut to 60%: the rules' pages survive, later tables' do not.
    let bytes = std::fs::read(db(&p)).expect("db");
    let cut = &bytes[..bytes.len() * 6 / 10];
    std::fs::write(db(&p), cut).expect("truncate");

    let (code, _, err) = promptloop(&p, &["rules", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("the file was cut short"), "{err}");
    assert!(
        err.contains(&format!(
            "is at {}",
            p.path.join(".promptloop/promptloop.db.bak").display()
        )),
        "{err}"
    );
    says_what_to_do(&err, &p.path);
    assert_eq!(std::fs::read(db(&p)).expect("db"), cut);

    let (code, report) = check_json(&p);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "damaged");
    assert!(
        report["problems"][0]
            .as_str()
            .expect("problem")
            .starts_with("the file was cut short")
    );

    let out = p
        .promptloop()
        .args(["store", "repair", "--json"])
        .output()
        .expect("repair");
    assert_eq!(out.status.code(), Some(0));
    let repair: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(repair["integrity"], "ok", "{repair:#}");
    let table = |name: &str| {
        repair["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == name)
            .cloned()
            .expect("table")
    };
    // Read from the damaged file itself, not only from the backup.
    assert!(
        table("rules")["from_damaged"].as_u64().expect("n") > 0,
        "{repair:#}"
    );
    assert_eq!(
        table("rules")["from_damaged"].as_u64().expect("n")
            + table("rules")["from_backup"].as_u64().expect("n"),
        6
    );
    // The failures' pages were cut off; the backup has them.
    assert!(
        table("failures")["from_backup"].as_u64().expect("n") > 0,
        "{repair:#}"
    );
    assert_eq!(
        std::fs::read(repair["moved_to"].as_str().expect("moved")).expect("aside"),
        cut
    );

    assert_eq!(rule_ids(&p), before);
    let (code, after) = check_json(&p);
    assert_eq!(code, 0);
    assert_eq!(after["counts"], counts, "{after:#}");
    // The token index was rebuilt: a lesson already known merges instead of duplicating.
    let (code, _, err) = promptloop(
        &p,
        &[
            "report-failure",
            "-f",
            "planning_error",
            "--teacher",
            "offline",
            "-D",
            "Built a new service number 3 instead of extending the billing module 3",
            "-C",
            "Check for existing systems first, case 3",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(rule_ids(&p), before, "the known rule was added again");
}

#[test]
fn a_newer_schema_is_left_untouched_by_every_command() {
    let p = project_with_rules();
    {
        let conn = rusqlite::Connection::open(db(&p)).expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("version");
    }
    let bytes = std::fs::read(db(&p)).expect("db");
    let (code, _, err) = promptloop(&p, &["rules", "list"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("its schema version is 99, newer than the ")
            && err.contains("upgrade promptloop"),
        "{err}"
    );
    let (code, report) = check_json(&p);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "newer_schema");
    assert_eq!(report["schema_version"], 99);
    for fix in ["repair", "reset"] {
        for force in [&[][..], &["--force"]] {
            let mut args = vec!["store", fix];
            args.extend_from_slice(force);
            let (code, _, err) = promptloop(&p, &args);
            assert_eq!(code, 1, "{args:?}");
            assert!(
                err.contains("newer than the ") && err.contains("left untouched"),
                "{err}"
            );
        }
    }
    assert_eq!(
        std::fs::read(db(&p)).expect("db"),
        bytes,
        "the file was changed"
    );
    assert!(
        aside(&p, "")
            .iter()
            .all(|f| f.ends_with("promptloop.db.bak"))
    );
}

#[test]
fn reset_moves_the_store_aside_and_refuses_a_healthy_one_without_force() {
    let p = project_with_rules();
    let (code, _, err) = promptloop(&p, &["store", "reset"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("is healthy") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(rule_ids(&p).len(), 6);
    let (code, _, err) = promptloop(&p, &["store", "repair"]);
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = promptloop(&p, &["store", "reset", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("a new, empty store"), "{out}");
    assert!(rule_ids(&p).is_empty());
    let moved = aside(&p, "reset-");
    assert_eq!(moved.len(), 1);
    // The old store is whole where it was moved.
    let conn = rusqlite::Connection::open(&moved[0]).expect("moved store");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM rules", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 6);

    // The user's store: none yet.
    let (code, out, _) = promptloop(&p, &["store", "check", "--global"]);
    assert_eq!(code, 0);
    assert!(out.contains("state: missing"), "{out}");
}
