//! Configuration for promptloop: discovery, loading, validation and flag
//! overrides, producing one validated [`Settings`] value.
//!
//! The file format is YAML and is a superset of the Python prototype's
//! `config.yaml`, which must load unchanged and without warnings.
//!
//! Loading runs two passes over the text with serde-saphyr:
//! 1. an untyped pass into a tree of [`serde_saphyr::Spanned`] nodes, which
//!    reports YAML syntax errors and records the line and column of every key
//!    and value, so later errors and warnings can point into the file;
//! 2. a typed pass into [`Settings`] through `serde_ignored`, which collects
//!    unknown keys instead of silently dropping them. Type errors carry a
//!    location from serde-saphyr; the tree turns that location back into the
//!    dotted key path.
//!
//! Validation that serde cannot express (ranges, cross-field rules) runs
//! afterwards and is located through the same tree.
//!
//! The parts: `schema` (the sections and their defaults), `values` (how values are
//! read), `choices` (closed sets of values), `agents` (the agent sections), `load`
//! (discovery and the two passes), `tree` (locations and key suggestions), `validate`,
//! `overrides` (flags over the file) and `error` (errors and warnings).

/// File name looked up in the working directory.
pub const PROJECT_FILE_NAME: &str = "promptloop.yaml";

/// Path of the user-level file below the XDG config directory.
pub const USER_FILE_RELATIVE: &str = "promptloop/config.yaml";

#[macro_use]
mod choices;
mod agents;
pub use agents::{
    AgentKind, AgentSettings, COMMAND_PLACEHOLDERS, CodexSettings, GeminiSettings,
    check_command_template,
};
mod error;
mod load;
mod overrides;
mod schema;
#[cfg(test)]
mod test_support;
mod tree;
mod validate;
mod values;

pub use choices::*;
pub use error::*;
pub use load::*;
pub use overrides::*;
pub use schema::*;
use tree::*;
use validate::*;
use values::*;
