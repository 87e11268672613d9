//! The one integration-test binary (fast to link on small machines): every module below is
//! a group of tests that run the real binary, real git, real pytest and the real agent CLI
//! against servers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod agent_command;
mod agents_e2e;
mod cli;
mod curation;
mod e2e_claude;
mod evidence;
mod failure_sources;
mod git_safety;
mod layering;
mod logging;
mod mcp;
mod mcp_install;
mod prototype;
mod redaction;
mod report_failure;
mod retention;
mod rules_file;
mod rules_targets;
mod serve;
mod serve_browser;
mod store;
mod store_postgres;
mod store_repair;
mod teachers;
