//! The one integration-test binary (fast to link on small machines): every module below is
//! a group of tests that run the real binary, real git, real pytest and the real agent CLI
//! against servers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod e2e_claude;
mod git_safety;
mod rules_file;
mod store;
