//! handoff: makes the marketing-to-sales lead handoff SLA enforce itself
//! inside the CRM.
//!
//! # Layout
//! - [`config`]: the config file (one per CRM instance): parse, validate,
//!   report every problem with its key path and the fix.
//! - [`policy`]: the SLA policy's shape (definitions, grades, commitments,
//!   escalation, calendars, field mapping).
//! - [`calendar`]: business-time arithmetic over weekly hours, holidays and
//!   time zones (DST-safe, overnight windows).
//! - [`engine`]: the pure evaluation — (lead, activities, owner, policy,
//!   calendar, now) → grade, clocks, actions. No I/O, no wall clock.
//! - [`doctor`]: `handoff doctor`, the org checked against the config
//!   (fields, task key, history, scopes, pools, owners, budget), with fixes.
//! - [`explain`]: `handoff explain`, one lead judged offline with the
//!   reasons in words (or the evaluation as JSON).
//! - [`notify`]: daily digests, the weekly summary and the calibration
//!   signals, by email, Slack or CRM task.
//! - [`cli`]: the `handoff` command line: clap's arguments turned into each
//!   command's own options (no other module imports it).
//! - [`exit`]: the exit codes.
//! - [`failpoints`]: named crash points for the crash tests (compiled in
//!   only with the `failpoints` feature).
//! - [`logging`]: log format and level, every line through the redactor.

pub mod calendar;
pub mod cli;
pub mod config;
pub mod daemon;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod doctor;
pub mod engine;
pub mod exit;
pub mod explain;
pub mod failpoints;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod policy;
pub mod report;
pub mod state;
pub mod store;
