//! `promptloop mcp install|uninstall` against each agent CLI's own config file: the entry is
//! added the way the CLI expects it (the real CLI lists it, and connects to it where it
//! checks), a second install changes nothing, and the uninstall gives the file back byte for
//! byte — or removes it, and the folder, when the install created them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{Project, claude_bin, codex_bin, gemini_bin};

/// One config file of one CLI, and what it held before.
struct Case {
    agent: &'static str,
    scope: &'static str,
    /// Relative to the project (`project` scope) or to HOME (`user`).
    file: &'static str,
    before: Option<&'static str>,
}

const CLAUDE_USER: &str = "{\n  \"numStartups\": 3,\n  \"theme\": \"dark\",\n  \"projects\": {\n    \"/somewhere\": {\n      \"allowedTools\": []\n    }\n  }\n}\n";
const MCP_JSON: &str = "{\n    \"mcpServers\": {\n        \"github\": {\n            \"type\": \"stdio\",\n            \"command\": \"gh-mcp\",\n            \"args\": [],\n            \"env\": {\"TOKEN\": \"${GITHUB_TOKEN}\"}\n        }\n    }\n}";
const CODEX_TOML: &str = "# my Codex settings\nmodel = \"gpt-5.5\"\napproval_policy = \"never\"\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\nargs = [\"--port\", \"0\"]  # keep\n\n[profiles.fast]\nmodel = \"gpt-5.5-mini\"\n";
const GEMINI_JSON: &str = "{\n  // chosen by hand\n  \"security\": {\"auth\": {\"selectedType\": \"gemini-api-key\"}},\n  \"mcpServers\": {},\n  \"ui\": {\"theme\": \"GitHub\"}\n}\n";

fn cases() -> Vec<Case> {
    vec![
        Case {
            agent: "claude",
            scope: "project",
            file: ".mcp.json",
            before: Some(MCP_JSON),
        },
        Case {
            agent: "claude",
            scope: "project",
            file: ".mcp.json",
            before: None,
        },
        Case {
            agent: "claude",
            scope: "user",
            file: ".claude.json",
            before: Some(CLAUDE_USER),
        },
        Case {
            agent: "codex",
            scope: "user",
            file: ".codex/config.toml",
            before: Some(CODEX_TOML),
        },
        Case {
            agent: "codex",
            scope: "user",
            file: ".codex/config.toml",
            before: None,
        },
        Case {
            agent: "gemini",
            scope: "project",
            file: ".gemini/settings.json",
            before: Some(GEMINI_JSON),
        },
        Case {
            agent: "gemini",
            scope: "user",
            file: ".gemini/settings.json",
            before: None,
        },
    ]
}

fn run(project: &Project, args: &[&str]) -> String {
    let out = project
        .promptloop()
        .args(args)
        .output()
        .expect("promptloop");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The real CLI, offline, in the project with the test's HOME.
fn cli(project: &Project, bin: PathBuf, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .current_dir(&project.path)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", project.home.path())
        .env("TMPDIR", project.home.path())
        .env("XDG_DATA_HOME", project.home.path().join(".local/share"))
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the agent CLI");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What the agent CLI itself says about the entry.
fn listed_by_the_cli(project: &Project, case: &Case, binary: &str) {
    match case.agent {
        "claude" => {
            let out = cli(project, claude_bin(), &["mcp", "get", "promptloop"]);
            assert!(out.contains(binary), "{out}");
            if case.scope == "user" {
                // Claude Code health-checks the servers it will start: ours answers.
                assert!(out.contains("Connected"), "{out}");
            } else {
                assert!(out.contains("Project config"), "{out}");
            }
        }
        "codex" => {
            let out = cli(
                project,
                codex_bin(),
                &["mcp", "get", "promptloop", "--json"],
            );
            let json = &out[out.find('{').expect("JSON")..];
            let v: Value = serde_json::Deserializer::from_str(json)
                .into_iter()
                .next()
                .expect("a JSON object")
                .expect("codex mcp get --json");
            assert_eq!(v["transport"]["command"], binary, "{v}");
            assert_eq!(
                v["transport"]["args"],
                serde_json::json!(["mcp", "--agent", "codex"])
            );
        }
        "gemini" => {
            // Gemini CLI starts servers only in trusted folders.
            let trusted = project.home.path().join(".gemini/trustedFolders.json");
            let was = std::fs::read(&trusted).ok();
            std::fs::create_dir_all(trusted.parent().unwrap()).unwrap();
            std::fs::write(
                &trusted,
                format!("{{\"{}\": \"TRUST_FOLDER\"}}", project.path.display()),
            )
            .unwrap();
            let out = cli(project, gemini_bin(), &["mcp", "list"]);
            match was {
                Some(bytes) => std::fs::write(&trusted, bytes).unwrap(),
                None => std::fs::remove_file(&trusted).unwrap(),
            }
            assert!(
                out.contains("promptloop") && out.contains("Connected"),
                "{out}"
            );
        }
        other => panic!("{other}"),
    }
}

fn check(case: &Case) {
    let project = Project::new();
    let base: &Path = if case.scope == "project" {
        &project.path
    } else {
        project.home.path()
    };
    let path = base.join(case.file);
    let dir_existed = path.parent().is_some_and(Path::exists);
    if let Some(text) = case.before {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let what = format!("{} {} {}", case.agent, case.scope, case.file);
    let args = ["--agent", case.agent, "--scope", case.scope];
    let install: Vec<&str> = ["mcp", "install"].iter().chain(&args).copied().collect();
    let uninstall: Vec<&str> = ["mcp", "uninstall"].iter().chain(&args).copied().collect();
    let binary = assert_cmd::cargo::cargo_bin("promptloop")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();

    // 1. The round trip, byte for byte.
    let said = run(&project, &install);
    assert!(said.contains("registered"), "{what}: {said}");
    let installed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(installed.contains(&binary), "{what}: {installed}");
    if let Some(before) = case.before {
        // Everything else is still there, in its own words.
        for line in before
            .lines()
            .filter(|l| (l.contains(':') || l.contains('=')) && !l.contains("mcpServers"))
        {
            let line = line.trim().trim_end_matches(',');
            assert!(
                installed.contains(line),
                "{what}: lost {line:?}:\n{installed}"
            );
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{what}: permissions");
    }
    let again = run(&project, &install);
    assert!(again.contains("nothing changed"), "{what}: {again}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        installed,
        "{what}: a second install changed the file"
    );
    let said = run(&project, &uninstall);
    assert!(said.contains("removed"), "{what}: {said}");
    match case.before {
        Some(before) => assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            before,
            "{what}: not byte-identical"
        ),
        None => {
            assert!(
                !path.exists(),
                "{what}: the file the install created is still there"
            );
            assert_eq!(
                path.parent().unwrap().exists(),
                dir_existed,
                "{what}: its folder"
            );
        }
    }
    let again = run(&project, &uninstall);
    assert!(
        again.contains("not registered") || again.contains("does not exist"),
        "{what}: {again}"
    );

    // 2. The agent CLI reads the entry (and connects to the server where it checks), and
    // after the uninstall it no longer has it, whatever it wrote into the file meanwhile.
    run(&project, &install);
    listed_by_the_cli(&project, case, &binary);
    run(&project, &uninstall);
    if path.exists() {
        // (The temporary folders' names hold "promptloop" too: look for the entry itself.)
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(
            !after.contains("\"promptloop\"") && !after.contains("mcp_servers.promptloop"),
            "{what}: {after}"
        );
    }
    unlisted_by_the_cli(&project, case);
}

/// The agent CLI no longer knows the server.
fn unlisted_by_the_cli(project: &Project, case: &Case) {
    let out = match case.agent {
        "claude" => cli(project, claude_bin(), &["mcp", "list"]),
        "codex" => cli(project, codex_bin(), &["mcp", "list"]),
        _ => cli(project, gemini_bin(), &["mcp", "list"]),
    };
    let names_it = out.lines().any(|l| {
        l.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
            .starts_with("promptloop")
    });
    assert!(!names_it, "{}: {out}", case.agent);
}

#[test]
fn install_then_uninstall_leaves_every_agent_config_as_it_was() {
    for case in cases() {
        check(&case);
    }
}

#[test]
fn a_symlinked_config_stays_a_link_and_a_file_it_cannot_edit_is_left_alone() {
    let project = Project::new();
    let real = project.home.path().join("dotfiles/claude.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, CLAUDE_USER).unwrap();
    let link = project.home.path().join(".claude.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    run(&project, &["mcp", "install", "--scope", "user"]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("\"promptloop\"")
    );
    run(&project, &["mcp", "uninstall", "--scope", "user"]);
    assert_eq!(std::fs::read_to_string(&real).unwrap(), CLAUDE_USER);

    // Not JSON, or a shape it cannot extend: exit 2, the file untouched.
    let bad = [
        (".mcp.json", "{\"mcpServers\": [\"x\"]}"),
        (".gemini/settings.json", "{ not json"),
    ];
    for (file, text) in bad {
        project.write(file, text);
        let agent = if file.starts_with(".gemini") {
            "gemini"
        } else {
            "claude"
        };
        let out = project
            .promptloop()
            .args(["mcp", "install", "--agent", agent])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot edit"), "{stderr}");
        assert_eq!(project.read(file), text);
    }
    let codex = project.home.path().join(".codex/config.toml");
    std::fs::create_dir_all(codex.parent().unwrap()).unwrap();
    let inline = "mcp_servers = { docs = { command = \"docs-mcp\" } }\n";
    std::fs::write(&codex, inline).unwrap();
    let out = project
        .promptloop()
        .args(["mcp", "install", "--agent", "codex"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&codex).unwrap(), inline);
    let out = project
        .promptloop()
        .args(["mcp", "install", "--agent", "codex", "--scope", "project"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scope user"));
}
