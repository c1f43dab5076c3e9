//! The in-process integration tests, linked into one binary: each suite is a module, and
//! `common` holds what they share (fixtures, the fake API server, the fake GitHub, the
//! recording helm). Filter by module path: `cargo nextest run --test it sync::`.
// Test helpers are `pub` for their sibling suites; the public-surface lint is for the library.
#![allow(unreachable_pub)]

mod charts;
mod common;
mod daemon;
mod git_cache;
mod github_status;
mod ha;
mod history;
mod layering;
mod ops;
mod plan_offline;
mod pr_comment_author;
mod pr_comment_golden;
mod pr_feedback;
mod pr_fetch;
mod prune;
mod retire;
pub mod rollout;
mod sync;
mod validate;
mod webhook;
