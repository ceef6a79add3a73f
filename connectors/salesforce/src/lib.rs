//! handoff's Salesforce connector.
//!
//! Reads leads, activities (tasks and events linked by `WhoId`), owners
//! (users with their managers and zones, and queues) and business hours
//! through SOQL windows on `SystemModstamp` (leads with their `LeadHistory`
//! owner and status rows when the org tracks field history), and writes SLA fields and
//! tasks through sObject Collections. See [`connect`] and
//! [`SalesforceSettings`].
//!
//! # Layout
//! - [`settings`]: what the daemon configures, including the [`TokenStore`].
//! - [`cursor`]: windows and their cursors (pure).
//! - [`map`]: rows → CRM-neutral records (pure).
//! - [`wire`]: JSON shapes and error classification (pure).
//! - [`limits`]: `Sforce-Limit-Info` (pure).
//! - [`package`]: the Metadata API package of the fields `handoff doctor` finds missing (pure).
//! - [`auth`]: each OAuth flow's token request, including the hand-built
//!   JWT assertion.
//! - `client`: Salesforce's dialect of the shared runtime
//!   (`handoff-runtime`: HTTP, deadlines, pacing, retries,
//!   re-authentication, budget, tokens).
//! - `connector`: the [`handoff_model::Connector`] implementation.

pub mod auth;
mod client;
mod connector;
pub mod cursor;
pub mod error;
pub mod limits;
pub mod map;
pub mod package;
pub mod settings;
pub mod wire;

pub use connector::{connect, connect_unchecked, SalesforceConnector};
pub use error::SalesforceError;
pub use settings::{
    Clock, HttpSettings, MemoryTokenStore, SalesforceAuth, SalesforceSettings, SharedClock, TokenStore,
    DEFAULT_API_VERSION,
};
