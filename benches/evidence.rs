//! `cargo bench --bench evidence`: `promptloop bench`'s own time per trial — the copy of
//! the project, the arm's rules rendered into it, the loop's snapshots and record, the
//! result kept in the store, the clean-up — with an agent and a check that cost almost
//! nothing. Overhead = trial wall time − agent time − check time (the bench reports each
//! trial's `overhead_ms`; this prints their mean, median and 90th percentile), on a small
//! project and on one with 2,000 files, with an arm of 20 rules and the `none` arm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const TASKS: usize = 2;
const TRIALS: u32 = 5;

fn main() {
    println!(
        "promptloop bench overhead ({TASKS} tasks × 2 arms × {TRIALS} trials, one at a time)\n"
    );
    for (label, files) in [
        ("small project (20 files)", 20),
        ("2,000-file project (8 MB)", 2000),
    ] {
        overhead(label, files);
    }
}

fn overhead(label: &str, files: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let project = root.join("project");
    for i in 0..files {
        let sub = project.join(format!("src/m{}", i % 40));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let body: String = (0..100)
            .map(|l| format!("line {l} of file {i} with some text\n"))
            .collect();
        std::fs::write(sub.join(format!("f{i}.py")), body).expect("write");
    }
    std::fs::create_dir_all(root.join("hidden")).expect("mkdir");
    std::fs::write(root.join("hidden/check.txt"), "ok\n").expect("write");
    let mut suite = String::from("tasks:\n");
    for t in 0..TASKS {
        suite.push_str(&format!(
            "  - id: t{t}\n    project: project\n    task: Task {t}\n    check: test -f check.txt\n    hidden_tests: hidden\n"
        ));
    }
    std::fs::write(root.join("suite.yaml"), suite).expect("suite");
    let mut rules = String::new();
    for r in 0..20 {
        rules.push_str(&format!(
            "- **Rule**: Rule number {r} about module m{r} and its helpers\n- **When**: Editing m{r}\n- **Why**: Reason {r}\n\n"
        ));
    }
    std::fs::write(root.join("rules.md"), rules).expect("rules");
    let agent = root.join("agent.sh");
    std::fs::write(&agent, "#!/bin/sh\nprintf 'x\\n' >> notes.txt\n").expect("agent");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        root.join("config.yaml"),
        format!(
            "agent:\n  kind: command\n  command: {}\nlearning:\n  max_retries: 0\ntests:\n  framework: none\n",
            agent.display()
        ),
    )
    .expect("config");
    let store_dir = root.join("store");
    std::fs::create_dir_all(&store_dir).expect("mkdir");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_promptloop"))
        .arg("bench")
        .arg(root.join("suite.yaml"))
        .args(["--json", "--trials", &TRIALS.to_string(), "--arms"])
        .arg(format!("{},none", root.join("rules.md").display()))
        .arg("--config")
        .arg(root.join("config.yaml"))
        .arg("-d")
        .arg(&store_dir)
        .env("TMPDIR", root)
        .output()
        .expect("run promptloop bench");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let trials = report["trials"].as_array().expect("trials");
    assert!(trials.iter().all(|t| t["passed"] == true), "{report:#}");
    let mut overhead: Vec<f64> = trials
        .iter()
        .map(|t| t["overhead_ms"].as_f64().unwrap_or(0.0))
        .collect();
    overhead.sort_by(|a, b| a.total_cmp(b));
    let n = overhead.len();
    let mean = overhead.iter().sum::<f64>() / n as f64;
    let agent: f64 = trials
        .iter()
        .map(|t| t["agent_ms"].as_f64().unwrap_or(0.0))
        .sum::<f64>()
        / n as f64;
    let tests: f64 = trials
        .iter()
        .map(|t| t["tests_ms"].as_f64().unwrap_or(0.0))
        .sum::<f64>()
        / n as f64;
    println!(
        "{label}: {n} trials in {wall:.1} s; per trial: agent {agent:.0} ms, check {tests:.0} ms, \
         bench overhead mean {mean:.0} ms, median {:.0} ms, p90 {:.0} ms",
        overhead[n / 2],
        overhead[(n * 9 / 10).min(n - 1)]
    );
    if !Path::new(&store_dir)
        .join(".promptloop/promptloop.db")
        .exists()
    {
        panic!("no store written");
    }
}
