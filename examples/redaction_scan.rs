//! `cargo run --example redaction_scan -- [--show] [--ext py,rs] DIR...`: how many
//! redactions the built-in redactor makes on a tree of ordinary source code. On code that
//! holds no credentials every redaction is a false positive, so this prints the
//! false-positive figures of docs/teachers.md:
//!
//! ```text
//! cargo run --example redaction_scan -- "$(python3 -c 'import os;print(os.path.dirname(os.__file__))')"
//! cargo run --example redaction_scan -- --ext rs src
//! ```
//!
//! Left out, as in the measurement: folders named `test`, `tests`, `idle_test`,
//! `site-packages`, `dist-packages` and `__pycache__` (tests plant keys on purpose),
//! `redact.rs` (its pattern table is made of secret shapes), and in `.rs` files everything
//! from the first `#[cfg(test)]` on. `--show` prints every redacted line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use promptloop::redact::Redactor;

const SKIPPED_DIRS: &[&str] = &[
    "test",
    "tests",
    "idle_test",
    "site-packages",
    "dist-packages",
    "__pycache__",
];

fn walk(dir: &Path, exts: &[String], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                walk(&path, exts, out);
            }
        } else if kind.is_file()
            && name != "redact.rs"
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.iter().any(|x| x == e))
        {
            out.push(path);
        }
    }
}

fn main() -> ExitCode {
    let mut show = false;
    let mut exts = vec!["py".to_string(), "rs".to_string()];
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--show" => show = true,
            "--ext" => match args.next() {
                Some(list) => exts = list.split(',').map(str::to_string).collect(),
                None => {
                    eprintln!("error: --ext needs a list, e.g. --ext py,rs");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: redaction_scan [--show] [--ext py,rs] DIR...");
                return ExitCode::SUCCESS;
            }
            _ => dirs.push(PathBuf::from(arg)),
        }
    }
    if dirs.is_empty() {
        eprintln!("error: name at least one folder to scan");
        return ExitCode::from(2);
    }
    let redactor = Redactor::get();
    for dir in &dirs {
        let mut files = Vec::new();
        walk(dir, &exts, &mut files);
        files.sort();
        let started = Instant::now();
        let (mut lines, mut bytes) = (0usize, 0usize);
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        let mut examples = Vec::new();
        for file in &files {
            let Ok(raw) = std::fs::read(file) else {
                continue;
            };
            let mut text = String::from_utf8_lossy(&raw).into_owned();
            if file.extension().is_some_and(|e| e == "rs")
                && let Some(at) = text.find("#[cfg(test)]")
            {
                text.truncate(at);
            }
            lines += text.lines().count();
            bytes += text.len();
            let out = redactor.redact(&text);
            for (kind, n) in &out.removed {
                *by_kind.entry(kind.clone()).or_default() += n;
            }
            if show && out.count() > 0 {
                for line in out.text.lines().filter(|l| l.contains("[REDACTED")) {
                    examples.push(format!("{}: {}", file.display(), line.trim()));
                }
            }
        }
        let hits: usize = by_kind.values().sum();
        println!(
            "{}: {} files, {lines} lines, {:.1} MB: {hits} redactions ({:.2} per 10,000 lines) {by_kind:?} in {:.1}s",
            dir.display(),
            files.len(),
            bytes as f64 / 1e6,
            hits as f64 * 10_000.0 / lines.max(1) as f64,
            started.elapsed().as_secs_f64()
        );
        for example in &examples {
            println!("    {example}");
        }
    }
    ExitCode::SUCCESS
}
