//! What handoff's two CRM connectors share, made once.
//!
//! Salesforce and HubSpot differ in their paths, shapes, error codes,
//! limit headers and pacing; those differences live in each connector's
//! [`Dialect`]. Everything else is here, so a fix is made once:
//!
//! - [`http`]: client construction (connect timeout, per-response timeout,
//!   a total deadline per attempt and per call, redirects off the CRM's
//!   host refused) and reading an answer up to a size cap.
//! - [`send`]: the send/retry/re-auth loop ([`Runtime::send`]): full-jitter
//!   backoff from the model's [`handoff_model::RetryPolicy`], a clamped
//!   `Retry-After` ([`retry_after`]), one single-flight re-authentication,
//!   the pause gate and the daily budget ([`budget`]), local pacing
//!   ([`pace`]) on tokio's clock.
//! - [`auth`]: static tokens and OAuth token endpoints ([`TokenManager`]),
//!   with rotated refresh tokens saved through a [`TokenStore`]
//!   ([`token`]) before use.
//! - [`clock`]: the CRM's "now", handed to the connector when it is built.
//! - [`decode`]: an answer is whole JSON of the promised shape, or the
//!   window fails and its cursor stays.
//! - [`paging`]: every listing ends ([`PageGuard`]: no page naming itself
//!   or a recent page, no page past the cap).
//! - [`window`]: finished windows, the arithmetic behind both cursors.
//!
//! Every external text that becomes part of an error or a log line passes
//! through [`handoff_model::redact`] first.

pub mod auth;
pub mod budget;
pub mod clock;
pub mod decode;
pub mod echo;
pub mod error;
pub mod http;
pub mod pace;
pub mod paging;
pub mod retry_after;
pub mod send;
pub mod token;
pub mod window;

pub use auth::{Access, Credentials, FormValue, Grant, StaticToken, TokenAnswer, TokenManager};
pub use budget::{BudgetReset, DailyBudget, PauseGate, Scope};
pub use clock::{Clock, SharedClock, SystemClock};
pub use error::RuntimeError;
pub use http::{HttpSettings, Raw, DEFAULT_CALL_DEADLINE};
pub use pace::{quota_for, Pacer};
pub use paging::PageGuard;
pub use send::{within, Bucket, Dialect, Observed, Refusal, Request, Response, Runtime, DEFAULT_OPERATION_DEADLINE};
pub use token::{FileTokenStore, MemoryTokenStore, TokenStore};
