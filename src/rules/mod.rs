//! Learned rules: turning a teacher LLM's answer into a [`Rule`], rendering it
//! as a markdown entry, and writing that entry into the agent's instruction
//! file (e.g. `CLAUDE.md`) without ever damaging the user's own text.
//!
//! The flow is `parse_answer` → `render_entry` → `add_entry`; `read_section_rules`
//! reads back what is already known so the teacher can be told about it.

pub mod file;
pub mod format;
pub mod targets;

pub use file::{AddOutcome, RulesFileError, SECTION_HEADING, add_entry, read_section_rules};
pub use format::{Field, ParseError, Rule, normalized_key, parse_answer, render_entry};
pub use targets::{FileForm, RulesTarget, RulesTargets};
