//! Finding and reading the config file: discovery order, the two passes over the YAML, and
//! messages that turn serde's errors into the user's key, line and column.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_saphyr::{MessageFormatter, Spanned};

use super::*;

/// Which file the settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Named with `--config`.
    Explicit(PathBuf),
    /// `<cwd>/promptloop.yaml`.
    Project(PathBuf),
    /// `$XDG_CONFIG_HOME/promptloop/config.yaml` or
    /// `$HOME/.config/promptloop/config.yaml`.
    User(PathBuf),
    /// No file; built-in defaults.
    Defaults,
}

impl ConfigSource {
    /// The file, unless defaults were used.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Explicit(p) | ConfigSource::Project(p) | ConfigSource::User(p) => Some(p),
            ConfigSource::Defaults => None,
        }
    }
}

/// Result of [`load`].
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    /// Where they came from.
    pub source: ConfigSource,
    /// Problems to show the user; never fatal.
    pub warnings: Vec<ConfigWarning>,
}

/// Reads the process environment; pass it to [`load`] outside tests.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Finds the config file to use when none is named, without reading it:
/// `<cwd>/promptloop.yaml`, then `$XDG_CONFIG_HOME/promptloop/config.yaml`
/// (or `$HOME/.config/...` when XDG_CONFIG_HOME is unset, empty or relative,
/// as the XDG spec says), then defaults.
pub fn discover(cwd: &Path, env: &dyn Fn(&str) -> Option<String>) -> ConfigSource {
    let project = cwd.join(PROJECT_FILE_NAME);
    if exists(&project) {
        return ConfigSource::Project(project);
    }
    let config_home = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(user) = config_home.map(|dir| dir.join(USER_FILE_RELATIVE))
        && exists(&user)
    {
        return ConfigSource::User(user);
    }
    ConfigSource::Defaults
}

/// A file we cannot even stat (e.g. permission denied) still counts as
/// present, so the read reports the problem instead of silently skipping it.
pub(super) fn exists(path: &Path) -> bool {
    match fs::metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Loads the effective settings.
///
/// `explicit` is the `--config` path (relative paths are taken from `cwd`);
/// it must exist. Without it the file is found by [`discover`]. `env` reads
/// environment variables (`HOME`, `XDG_CONFIG_HOME`); tests pass a fake.
pub fn load(
    explicit: Option<&Path>,
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let (source, shown) = match explicit {
        Some(given) => {
            let resolved = cwd.join(given);
            if !exists(&resolved) {
                return Err(ConfigError::NotFound {
                    path: given.to_path_buf(),
                });
            }
            // Messages use the path as typed, which is what the user knows.
            (ConfigSource::Explicit(resolved), given.to_path_buf())
        }
        None => match discover(cwd, env) {
            ConfigSource::Defaults => {
                return Ok(Loaded {
                    settings: Settings::default(),
                    source: ConfigSource::Defaults,
                    warnings: Vec::new(),
                });
            }
            found => {
                let shown = found.path().map(Path::to_path_buf).unwrap_or_default();
                (found, shown)
            }
        },
    };
    let file = source.path().map(Path::to_path_buf).unwrap_or_default();
    let text = fs::read_to_string(&file).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    let (settings, warnings) = from_yaml_str(&text, &shown, env)?;
    Ok(Loaded {
        settings,
        source,
        warnings,
    })
}

/// Parses and validates config text; `path` is only used in messages.
/// Empty text (or only comments) gives the defaults.
pub fn from_yaml_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Settings, Vec<ConfigWarning>), ConfigError> {
    let at = |position: Option<Position>| Origin::File {
        path: path.to_path_buf(),
        position,
    };

    // Pass 1: syntax, and the location of every key and value.
    let root = serde_saphyr::from_str_with_options::<Spanned<Node>>(text, yaml_options()).map_err(
        |e| ConfigError::Syntax {
            at: at(error_position(&e)),
            message: error_message(&e),
        },
    )?;
    // An empty document (no text, only comments, or a bare `---`) is null;
    // it means "all defaults", not "the document must be a mapping".
    if matches!(root.value, Node::Null) {
        return Ok((Settings::default(), Vec::new()));
    }
    let tree = LocationTree::new(root, text);

    // Pass 2: typed, collecting keys nothing reads.
    let mut ignored: Vec<Vec<Seg>> = Vec::new();
    let typed = serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |d| {
        serde_ignored::deserialize(d, |p| ignored.push(segments_of(&p)))
    });
    let mut settings: Settings = typed.map_err(|e| {
        let position = error_position(&e);
        let entry = position.and_then(|p| tree.entry_at(p));
        ConfigError::Invalid {
            at: at(position),
            key: entry.map(|n| dotted(&n.path)).unwrap_or_default(),
            message: friendly_type_message(&error_message(&e), entry),
        }
    })?;

    let mut warnings = Vec::new();
    for path_segs in &ignored {
        let key = dotted(path_segs);
        let key_pos = tree
            .find(path_segs)
            .and_then(|e| e.key_at.or(Some(e.value_at)));
        if let Some(message) = secret_key_message(path_segs) {
            return Err(ConfigError::Invalid {
                at: at(key_pos),
                key,
                message,
            });
        }
        warnings.push(ConfigWarning {
            at: at(key_pos),
            key,
            kind: WarningKind::UnknownKey {
                suggestion: suggest_key(path_segs),
            },
        });
    }

    for (i, source) in settings.failure_sources.iter().enumerate() {
        if !source.name.is_empty() && !KNOWN_FAILURE_SOURCES.iter().any(|(n, _)| *n == source.name)
        {
            let segs = vec![
                Seg::Key("failure_sources".into()),
                Seg::Index(i),
                Seg::Key("name".into()),
            ];
            warnings.push(ConfigWarning {
                at: at(tree.find(&segs).map(|e| e.value_at)),
                key: dotted(&segs),
                kind: WarningKind::UnknownFailureSource,
            });
        }
    }
    for kind in settings.failure_prompts.keys() {
        if !KNOWN_FAILURE_TYPES.contains(&kind.as_str()) {
            let segs = vec![Seg::Key("failure_prompts".into()), Seg::Key(kind.clone())];
            warnings.push(ConfigWarning {
                at: at(tree.find(&segs).and_then(|e| e.key_at)),
                key: dotted(&segs),
                kind: WarningKind::UnknownFailureType,
            });
        }
    }

    let home = env("HOME").filter(|h| !h.is_empty());
    for (i, target) in settings.rules.targets.iter_mut().enumerate() {
        *target = expand_home(target, home.as_deref()).map_err(|message| {
            let segs = [
                Seg::Key("rules".into()),
                Seg::Key("targets".into()),
                Seg::Index(i),
            ];
            ConfigError::Invalid {
                at: at(tree.find(&segs).map(|e| e.value_at)),
                key: dotted(&segs),
                message,
            }
        })?;
    }
    for (key, slot) in [
        ("rules.file", &mut settings.rules.file),
        ("agent.rules_file", &mut settings.agent.rules_file),
        ("codex.home", &mut settings.codex.home),
        ("logging.file", &mut settings.logging.file),
    ] {
        if let Some(file) = slot.as_mut() {
            *file = expand_home(file, home.as_deref()).map_err(|message| ConfigError::Invalid {
                at: at(tree.find_dotted(key).map(|e| e.value_at)),
                key: key.to_string(),
                message,
            })?;
        }
    }

    if let Some(v) = settings.violations().into_iter().next() {
        return Err(ConfigError::Invalid {
            at: at(tree.find_dotted(v.key).map(|e| e.value_at)),
            key: v.key.to_string(),
            message: v.message,
        });
    }
    Ok((settings, warnings))
}

pub(super) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // We render our own one-line messages; snippets would be wasted work.
    options.with_snippet = false;
    options
}

pub(super) fn error_position(e: &serde_saphyr::Error) -> Option<Position> {
    e.location().filter(|l| l.line() > 0).map(|l| Position {
        line: l.line(),
        column: l.column(),
    })
}

/// The error text without serde-saphyr's own "line X column Y" prefix or
/// snippet, since we print the location as `file:line:col` ourselves.
pub(super) fn error_message(e: &serde_saphyr::Error) -> String {
    let raw = serde_saphyr::DefaultMessageFormatter.format_message(e.without_snippet());
    // The formatter's output is not sanitized; keep messages on one line.
    raw.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Rewords serde-saphyr's terse type errors ("invalid u32") into what the
/// user should write, quoting what was found.
pub(super) fn friendly_type_message(message: &str, entry: Option<&TreeEntry>) -> String {
    let found = entry.map(|e| e.found.as_str()).unwrap_or("");
    let wanted = if message.starts_with("invalid u") {
        "a whole number (0 or more)"
    } else if message.starts_with("invalid i") {
        "a whole number"
    } else if message.starts_with("invalid f") {
        "a number"
    } else if message.starts_with("invalid bool") {
        "true or false"
    } else if message == "expected mapping start" {
        "a mapping of keys"
    } else if message == "expected sequence start" {
        "a list"
    } else if message == "expected string scalar" {
        "a string"
    } else {
        return message.to_string();
    };
    if found.is_empty() {
        format!("expected {wanted}")
    } else {
        format!("expected {wanted}, found {found}")
    }
}

/// Literal secrets do not belong in a file that gets committed or shared.
pub(super) fn secret_key_message(path: &[Seg]) -> Option<String> {
    const SECRET_KEYS: &[&str] = &["token", "bearer_token", "api_key", "apikey", "password"];
    let [Seg::Key(section), Seg::Key(key)] = path else {
        return None;
    };
    if !SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
        return None;
    }
    let env_key = match section.as_str() {
        "n8n" => "bearer_token_env",
        "teacher" => "api_key_env",
        _ => return None,
    };
    Some(format!(
        "secrets are not allowed in the config file; put the token in an environment \
         variable and set {section}.{env_key} to its name"
    ))
}

pub(super) fn expand_home(path: &Path, home: Option<&str>) -> Result<PathBuf, String> {
    let Some(text) = path.to_str() else {
        return Ok(path.to_path_buf());
    };
    let rest = if text == "~" {
        ""
    } else if let Some(rest) = text.strip_prefix("~/") {
        rest
    } else {
        return Ok(path.to_path_buf());
    };
    match home {
        Some(home) => Ok(Path::new(home).join(rest)),
        None => Err("cannot expand ~/ because HOME is not set".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::*;

    #[test]
    fn discovery_order() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let cwd = tmp.path().join("project");
        let home = tmp.path().join("home");
        let xdg = tmp.path().join("xdg");
        for dir in [
            &cwd,
            &home.join(".config/promptloop"),
            &xdg.join("promptloop"),
        ] {
            fs::create_dir_all(dir)?;
        }
        let home_s = home.to_string_lossy().into_owned();
        let xdg_s = xdg.to_string_lossy().into_owned();
        let with_xdg = env_of(&[("HOME", &home_s), ("XDG_CONFIG_HOME", &xdg_s)]);
        let empty_xdg = env_of(&[("HOME", &home_s), ("XDG_CONFIG_HOME", "")]);
        let nothing = env_of(&[]);

        // Nothing anywhere: defaults.
        let l = load(None, &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::Defaults);
        assert_eq!(l.settings, Settings::default());

        // $HOME/.config is used when XDG_CONFIG_HOME is empty.
        let home_file = home.join(".config/promptloop/config.yaml");
        fs::write(&home_file, "learning:\n  max_retries: 1\n")?;
        let l = load(None, &cwd, &empty_xdg)?;
        assert_eq!(l.source, ConfigSource::User(home_file.clone()));
        assert_eq!(l.settings.learning.max_retries, 1);
        // ...and skipped when there is no HOME at all.
        assert_eq!(load(None, &cwd, &nothing)?.source, ConfigSource::Defaults);

        // XDG_CONFIG_HOME replaces $HOME/.config.
        let xdg_file = xdg.join("promptloop/config.yaml");
        fs::write(&xdg_file, "learning:\n  max_retries: 2\n")?;
        let l = load(None, &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::User(xdg_file));
        assert_eq!(l.settings.learning.max_retries, 2);

        // The project file beats the user file.
        let project_file = cwd.join("promptloop.yaml");
        fs::write(&project_file, "learning:\n  max_retries: 4\n")?;
        let l = load(None, &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::Project(project_file));
        assert_eq!(l.settings.learning.max_retries, 4);

        // An explicit file beats everything; relative paths start at cwd.
        fs::write(cwd.join("config.yaml"), PROTOTYPE)?;
        let l = load(Some(Path::new("config.yaml")), &cwd, &with_xdg)?;
        assert_eq!(l.source, ConfigSource::Explicit(cwd.join("config.yaml")));
        assert_eq!(l.settings.learning.max_retries, 3);
        assert!(l.warnings.is_empty());
        Ok(())
    }

    #[test]
    fn explicit_missing_file_is_an_error() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let err = load(Some(Path::new("nope.yaml")), tmp.path(), &env_of(&[]))
            .err()
            .ok_or("expected an error")?;
        assert!(matches!(err, ConfigError::NotFound { .. }));
        assert_eq!(err.to_string(), "nope.yaml: config file not found");
        Ok(())
    }

    #[test]
    fn explicit_empty_file_gives_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let file = tmp.path().join("empty.yaml");
        fs::write(&file, "")?;
        let l = load(Some(&file), tmp.path(), &env_of(&[]))?;
        assert_eq!(l.settings, Settings::default());
        assert_eq!(l.source, ConfigSource::Explicit(file));
        Ok(())
    }

    #[test]
    fn unreadable_file_is_an_error() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        // A directory named like the project file cannot be read as text.
        fs::create_dir(tmp.path().join("promptloop.yaml"))?;
        let err = load(None, tmp.path(), &env_of(&[]))
            .err()
            .ok_or("expected an error")?;
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn invalid_yaml_reports_line_and_column() {
        let err = parse_err("claude:\n  max_turns: [1\n");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert_eq!(err.position(), pos(2, 14));
        assert!(
            err.to_string()
                .starts_with("config.yaml:2:14: invalid yaml: "),
            "{err}"
        );

        let err = parse_err("teacher:\n  mode: x: y\n");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        assert_eq!(err.position().map(|p| p.line), Some(2));

        let err = parse_err("learning:\n  max_retries: 1\n  max_retries: 2\n");
        assert_eq!(err.position().map(|p| p.line), Some(3), "{err}");
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn wrong_type_reports_line_column_and_key() {
        let err = parse_err("claude:\n  max_turns: \"lots\"\n");
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
        assert_eq!(err.position(), pos(2, 14));
        assert_eq!(
            err.to_string(),
            "config.yaml:2:14: claude.max_turns: expected a whole number (0 or more), found \"lots\""
        );

        let err = parse_err("teacher: fast\n");
        assert_eq!(
            err.to_string(),
            "config.yaml:1:10: teacher: expected a mapping of keys, found fast"
        );

        let err = parse_err("- a\n- b\n");
        assert_eq!(err.position(), pos(1, 1), "{err}");

        let err = parse_err("learning:\n  auto_retry: maybe\n");
        assert_eq!(err.position(), pos(2, 15), "{err}");
        assert!(err.to_string().contains("learning.auto_retry"), "{err}");
    }

    #[test]
    fn literal_tokens_are_rejected() {
        let err = parse_err("n8n:\n  webhook_url: https://x\n  bearer_token: abc123\n");
        assert_eq!(err.position(), pos(3, 3));
        assert!(
            err.to_string()
                .contains("n8n.bearer_token: secrets are not allowed"),
            "{err}"
        );
        assert!(err.to_string().contains("n8n.bearer_token_env"), "{err}");
        let err = parse_err("n8n:\n  token: abc\n");
        assert!(err.to_string().contains("n8n.token"), "{err}");
        let err = parse_err("teacher:\n  api_key: sk-ant-123\n");
        assert!(err.to_string().contains("teacher.api_key_env"), "{err}");
        // A secret pasted into the *_env field is caught too.
        let err = parse_err("n8n:\n  bearer_token_env: \"sk-abc-123\"\n");
        assert!(
            err.to_string().contains("name of an environment variable"),
            "{err}"
        );
        let s = parse_ok("n8n:\n  bearer_token_env: N8N_TOKEN\n");
        assert_eq!(s.n8n.bearer_token_env.as_deref(), Some("N8N_TOKEN"));
    }

    #[test]
    fn home_prefix_is_expanded() {
        let s = parse_ok("rules:\n  file: ~/rules/CLAUDE.md\nlogging:\n  file: ~/pl.log\n");
        assert_eq!(s.rules.file, Some(PathBuf::from("/home/u/rules/CLAUDE.md")));
        assert_eq!(s.logging.file, Some(PathBuf::from("/home/u/pl.log")));
        let s = parse_ok("rules:\n  file: docs/~/CLAUDE.md\n");
        assert_eq!(s.rules.file, Some(PathBuf::from("docs/~/CLAUDE.md")));
        let err = from_yaml_str(
            "rules:\n  file: ~/x.md\n",
            Path::new("c.yaml"),
            &env_of(&[]),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("c.yaml:2:9: rules.file: cannot expand ~/ because HOME is not set")
        );
    }
}
