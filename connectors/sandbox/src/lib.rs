//! The sandbox CRM: loopback emulators of the Salesforce REST API and the
//! HubSpot CRM v3 API, fed by a deterministic synthetic org.
//!
//! # Layout
//! - [`clock`]: the simulated clock every emulator reads; tests advance it.
//! - [`org`]: the synthetic org — owners, queues, calendars and a timeline of
//!   events (leads arriving, reps touching them, closing them …) generated
//!   from a seed, with the rep behaviours that produced them as ground truth.
//! - [`faults`]: faults an admin can inject (429 storms, 5xx, latency,
//!   revoked tokens, partial batch failures, search lag, late commits).
//! - [`log`]: every request served, so tests count API calls and writes.
//! - [`salesforce`], [`hubspot`]: the two emulators, each a record store
//!   materialised from the org timeline plus an axum router.
//! - [`server`]: binds a loopback listener (plain HTTP or TLS with a
//!   generated CA) and serves one emulator plus the admin API under
//!   `/__sandbox/`.
//! - [`generate`]: builds the [`org::SyntheticOrg`] from a seed.
//! - [`admin`]: the generic admin routes (clock, faults, request log, org).
//! - [`tls`]: the throwaway CA and loopback certificate for HTTPS.
//! - `names`: field and property names, numbered once per process, so
//!   the emulators' rows name their fields by 16-bit numbers.
//! - [`slack`]: a loopback Slack (incoming webhook and `chat.postMessage`)
//!   with 429s and `ok: false` errors on demand, for the digests and the
//!   weekly summary.

pub mod admin;
pub mod clock;
pub mod faults;
pub mod generate;
pub mod hubspot;
pub mod log;
mod names;
pub mod org;
pub mod salesforce;
pub mod server;
pub mod slack;
pub mod task_report;
pub mod tls;

pub use clock::SimClock;
pub use faults::{Fault, Faults};
pub use generate::generate;
pub use log::{LoggedRequest, RequestLog};
pub use server::{start, start_with_org, ClockMode, Emulator, RunningSandbox, SandboxError, SandboxOptions, Shared};
