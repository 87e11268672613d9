//! What a config file can get wrong, located by file, line and column; warnings for what
//! it may get wrong.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::*;

/// A 1-based line and column in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, counted in characters.
    pub column: u64,
}

/// Where a setting came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file, with a position when one is known.
    File {
        /// The file as the user would recognise it.
        path: PathBuf,
        /// Line and column, if the value is in the file.
        position: Option<Position>,
    },
    /// A command-line flag such as `--teacher`.
    Flag(String),
    /// A [`Settings`] value built in code, with no file or flag behind it.
    Effective,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                position: Some(p),
            } => write!(f, "{}:{}:{}", path.display(), p.line, p.column),
            Origin::File {
                path,
                position: None,
            } => write!(f, "{}", path.display()),
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Effective => f.write_str("settings"),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named config file does not exist.
    #[error("{}: config file not found", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A config file exists but cannot be read (permissions, not UTF-8, a
    /// directory...).
    #[error("{}: cannot read config file: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
    /// The text is not valid YAML.
    #[error("{at}: invalid yaml: {message}")]
    Syntax {
        /// File and position.
        at: Origin,
        /// Parser message.
        message: String,
    },
    /// Valid YAML, but a value has the wrong type, is out of range, or is
    /// not allowed.
    #[error("{}", invalid_display(at, key, message))]
    Invalid {
        /// File and position, or the flag.
        at: Origin,
        /// Dotted key path such as `claude.max_turns`; empty for the document.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

pub(super) fn invalid_display(at: &Origin, key: &str, message: &str) -> String {
    // A flag already names the setting, so repeating the key adds noise.
    if key.is_empty() || matches!(at, Origin::Flag(_)) {
        format!("{at}: {message}")
    } else {
        format!("{at}: {key}: {message}")
    }
}

impl ConfigError {
    /// Position in the file, when the error has one.
    pub fn position(&self) -> Option<Position> {
        match self {
            ConfigError::Syntax {
                at: Origin::File { position, .. },
                ..
            }
            | ConfigError::Invalid {
                at: Origin::File { position, .. },
                ..
            } => *position,
            _ => None,
        }
    }
}

/// What a [`ConfigWarning`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// A key that no setting reads; it is ignored.
    UnknownKey {
        /// A known key that is probably meant, as a dotted path.
        suggestion: Option<String>,
    },
    /// A `failure_sources` entry with a name promptloop does not know.
    UnknownFailureSource,
    /// A `failure_prompts` key that is not a known failure type.
    UnknownFailureType,
}

/// A problem that does not stop loading but that the user should see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// File and position.
    pub at: Origin,
    /// Dotted key path.
    pub key: String,
    /// Category, with the suggestion for unknown keys.
    pub kind: WarningKind,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.at, self.key)?;
        match &self.kind {
            WarningKind::UnknownKey {
                suggestion: Some(s),
            } => write!(f, "unknown key, ignored (did you mean `{s}`?)"),
            WarningKind::UnknownKey { suggestion: None } => f.write_str("unknown key, ignored"),
            WarningKind::UnknownFailureSource => write!(
                f,
                "unknown failure source, expected one of: {}",
                KNOWN_FAILURE_SOURCES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            WarningKind::UnknownFailureType => write!(
                f,
                "unknown failure type, expected one of: {}",
                KNOWN_FAILURE_TYPES.join(", ")
            ),
        }
    }
}
