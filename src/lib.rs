//! promptloop makes coding agents learn from their mistakes: it runs an agent CLI headless
//! on a task, runs the project's tests, turns failures into rules (Rule / When / Why) through
//! a teacher LLM, writes them into the agent's instruction file and retries.
//!
//! Layers (see docs/ARCHITECTURE.md): `cli` talks to the user; `learning_loop` orchestrates;
//! `agent`, `testing`, `git`, `teacher`, `rules`, `record` do one job each on top of
//! `process`, `settings`, `failure`, `redact` and `events`.

pub mod agent;
pub mod bench;
pub mod cli;
pub mod events;
pub mod failure;
pub mod fingerprint;
pub mod git;
pub mod learn;
pub mod learning_loop;
pub mod pattern;
pub mod process;
pub mod record;
pub mod redact;
pub mod retention;
pub mod review;
pub mod rules;
pub mod settings;
pub mod stats;
pub mod store;
pub mod teacher;
pub mod testing;
