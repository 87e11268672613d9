//! Which runner a test command uses, and how to ask Jest and Vitest for a JSON report
//! without changing what the command tests.

use std::path::Path;

use super::Framework;

/// Characters after which we no longer know where a command's arguments end.
const SHELL_SPECIAL: &[char] = &[
    ';', '&', '|', '<', '>', '`', '$', '(', ')', '\n', '\'', '"', '\\', '#',
];

/// Package-manager words that run a `package.json` script.
const SCRIPT_RUNNERS: &[&str] = &["npm", "yarn", "pnpm", "bun"];

/// The framework named by the command (or the `package.json` script it runs).
pub fn from_command(command: &str, project_dir: Option<&Path>) -> Option<Framework> {
    from_command_depth(command, project_dir, 0)
}

fn from_command_depth(command: &str, project_dir: Option<&Path>, depth: u8) -> Option<Framework> {
    if command.contains("-m pytest") || command.contains("-m py.test") {
        return Some(Framework::Pytest);
    }
    for simple in command.split([';', '&', '|', '\n']) {
        let words = words_of(simple);
        let Some(first) = words.first() else { continue };
        let first = basename(first);
        let second = words.get(1).map(|w| basename(w)).unwrap_or("");
        let found = match first {
            "pytest" | "py.test" | "tox" | "nox" => Some(Framework::Pytest),
            "jest" => Some(Framework::Jest),
            "vitest" => Some(Framework::Vitest),
            "go" if second == "test" => Some(Framework::Go),
            "cargo" => cargo_subcommand(&words),
            "mvn" | "mvnw" | "gradle" | "gradlew" => Some(Framework::Junit),
            "npx" | "bunx" => runner_word(second),
            _ if SCRIPT_RUNNERS.contains(&first) => {
                if second == "exec" || second == "dlx" {
                    runner_word(words.get(2).map(|w| basename(w)).unwrap_or(""))
                } else {
                    match (script_name(&words), project_dir) {
                        (Some(name), Some(dir)) if depth < 3 => package_script(dir, &name)
                            .and_then(|s| from_command_depth(&s, project_dir, depth + 1)),
                        _ => runner_word(second),
                    }
                }
            }
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The framework a project's marker files point to.
pub fn from_project(dir: &Path) -> Option<Framework> {
    if let Ok(text) = std::fs::read_to_string(dir.join("package.json"))
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
    {
        let has = |name: &str| {
            ["dependencies", "devDependencies"]
                .iter()
                .any(|k| json.get(k).and_then(|d| d.get(name)).is_some())
        };
        if has("vitest") {
            return Some(Framework::Vitest);
        }
        if has("jest") {
            return Some(Framework::Jest);
        }
    }
    if dir.join("Cargo.toml").exists() {
        return Some(if dir.join(".config/nextest.toml").exists() {
            Framework::Nextest
        } else {
            Framework::Cargo
        });
    }
    if dir.join("go.mod").exists() {
        return Some(Framework::Go);
    }
    let python = [
        "pytest.ini",
        "conftest.py",
        "pyproject.toml",
        "setup.cfg",
        "tox.ini",
        "setup.py",
    ];
    if python.iter().any(|f| dir.join(f).exists()) {
        return Some(Framework::Pytest);
    }
    if dir.join("pom.xml").exists() || dir.join("build.gradle").exists() {
        return Some(Framework::Junit);
    }
    None
}

/// The command with the flags that make Jest or Vitest also write a JSON report to
/// `quoted_path`, or `None` where appending flags could change what the command does
/// (pipes, `&&`, quoting, scripts that run more than the test runner).
pub fn with_report_flags(
    command: &str,
    framework: Framework,
    project_dir: &Path,
    quoted_path: &str,
) -> Option<String> {
    let flags = match framework {
        Framework::Jest => format!("--json --outputFile={quoted_path} --testLocationInResults"),
        Framework::Vitest => {
            format!("--reporter=default --reporter=json --outputFile.json={quoted_path}")
        }
        _ => return None,
    };
    if command.contains(SHELL_SPECIAL) {
        return None;
    }
    let words = words_of(command);
    let first = basename(words.first()?);
    let second = words.get(1).map(|w| basename(w)).unwrap_or("");
    let direct = |w: &str| runner_word(w) == Some(framework);
    let command = command.trim_end();
    if direct(first)
        || ((first == "npx" || first == "bunx") && direct(second))
        || (SCRIPT_RUNNERS.contains(&first) && second == "exec" && direct(words.get(2)?))
    {
        return Some(format!("{command} {flags}"));
    }
    if SCRIPT_RUNNERS.contains(&first) {
        let name = script_name(&words)?;
        let script = package_script(project_dir, &name)?;
        // The script must itself be one plain runner invocation, so the flags reach it.
        if script.contains(SHELL_SPECIAL) {
            return None;
        }
        let script_words = words_of(&script);
        let runner = basename(script_words.first()?);
        let runner_ok = direct(runner)
            || ((runner == "npx" || runner == "bunx")
                && direct(script_words.get(1).map(|w| basename(w)).unwrap_or("")));
        if !runner_ok {
            return None;
        }
        // npm needs `--` before arguments meant for the script; yarn, pnpm and bun do not.
        let has_separator = words.contains(&"--");
        let sep = if first == "npm" && !has_separator {
            "-- "
        } else {
            ""
        };
        return Some(format!("{command} {sep}{flags}"));
    }
    None
}

/// Words of a simple command, leading `VAR=value` assignments and `env`/`time`/`exec`
/// dropped.
fn words_of(simple: &str) -> Vec<&str> {
    let mut words: Vec<&str> = simple.split_whitespace().collect();
    while let Some(first) = words.first() {
        let is_assignment = first.contains('=') && !first.starts_with('-');
        if is_assignment || matches!(*first, "env" | "time" | "exec" | "command") {
            words.remove(0);
        } else {
            break;
        }
    }
    words
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn runner_word(word: &str) -> Option<Framework> {
    match word {
        "jest" => Some(Framework::Jest),
        "vitest" => Some(Framework::Vitest),
        "pytest" => Some(Framework::Pytest),
        _ => None,
    }
}

/// `cargo test`, `cargo +nightly test`, `cargo nextest run`.
fn cargo_subcommand(words: &[&str]) -> Option<Framework> {
    let sub = words
        .iter()
        .skip(1)
        .find(|w| !w.starts_with('+') && !w.starts_with('-'))?;
    match *sub {
        "test" | "t" => Some(Framework::Cargo),
        "nextest" => Some(Framework::Nextest),
        _ => None,
    }
}

/// `npm test` → `test`; `npm run unit` → `unit`; `yarn unit` → `unit`.
fn script_name(words: &[&str]) -> Option<String> {
    let first = basename(words.first()?);
    let rest: Vec<&str> = words
        .iter()
        .skip(1)
        .copied()
        .filter(|w| !w.starts_with('-'))
        .collect();
    let name = match rest.first().copied()? {
        "t" | "test" => "test",
        "run" | "run-script" => rest.get(1).copied()?,
        other if first != "npm" => other,
        _ => return None,
    };
    Some(name.to_string())
}

fn package_script(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("scripts")?.get(name)?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_their_runner() {
        let f = |c: &str| from_command(c, None);
        assert_eq!(f("pytest tests/ -v --tb=short"), Some(Framework::Pytest));
        assert_eq!(f("cd app && python -m pytest -q"), Some(Framework::Pytest));
        assert_eq!(f("npx jest --ci"), Some(Framework::Jest));
        assert_eq!(f("CI=1 npx vitest run"), Some(Framework::Vitest));
        assert_eq!(f("go test ./..."), Some(Framework::Go));
        assert_eq!(
            f("go vet ./... && go test -race ./..."),
            Some(Framework::Go)
        );
        assert_eq!(f("cargo test --workspace"), Some(Framework::Cargo));
        assert_eq!(f("cargo +nightly test"), Some(Framework::Cargo));
        assert_eq!(f("cargo nextest run"), Some(Framework::Nextest));
        assert_eq!(f("mvn -q test"), Some(Framework::Junit));
        assert_eq!(f("cargo build"), None);
        assert_eq!(f("make test"), None);
    }

    #[test]
    fn npm_scripts_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"scripts":{"test":"jest --coverage","unit":"vitest run","lint":"eslint . && jest"}}"#,
        )
        .unwrap();
        let d = Some(dir.path());
        assert_eq!(from_command("npm test", d), Some(Framework::Jest));
        assert_eq!(from_command("npm run unit", d), Some(Framework::Vitest));
        assert_eq!(from_command("yarn unit", d), Some(Framework::Vitest));
        assert_eq!(from_command("npm run lint", d), Some(Framework::Jest));
        let p = "/tmp/r.json";
        assert_eq!(
            with_report_flags("npm test", Framework::Jest, dir.path(), p).as_deref(),
            Some("npm test -- --json --outputFile=/tmp/r.json --testLocationInResults")
        );
        assert_eq!(
            with_report_flags("yarn unit", Framework::Vitest, dir.path(), p).as_deref(),
            Some("yarn unit --reporter=default --reporter=json --outputFile.json=/tmp/r.json")
        );
        // The lint script runs eslint first: flags appended to it would reach jest only by luck.
        assert_eq!(
            with_report_flags("npm run lint", Framework::Jest, dir.path(), p),
            None
        );
        assert_eq!(
            with_report_flags("npx jest && echo ok", Framework::Jest, dir.path(), p),
            None
        );
        assert!(
            with_report_flags("npx jest src", Framework::Jest, dir.path(), p)
                .unwrap()
                .starts_with("npx jest src --json")
        );
    }

    #[test]
    fn project_markers() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(from_project(dir.path()), None);
        std::fs::write(dir.path().join("go.mod"), "module x\n").unwrap();
        assert_eq!(from_project(dir.path()), Some(Framework::Go));
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"devDependencies":{"vitest":"3"}}"#,
        )
        .unwrap();
        assert_eq!(from_project(dir.path()), Some(Framework::Vitest));
    }
}
