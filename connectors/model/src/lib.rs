//! The CRM-neutral model every part of handoff speaks.
//!
//! Connectors translate Salesforce and HubSpot records into these types; the
//! engine evaluates them; the daemon stores them. Nothing here does I/O, and
//! nothing here knows a CRM's field names beyond carrying them in
//! [`Lead::fields`], where the policy's per-CRM field mapping finds them.
//!
//! # Layout
//! - [`record`]: [`Lead`], [`Activity`], [`Owner`] as pulled from a CRM.
//! - [`calendar`]: business hours and holidays as data ([`BusinessCalendar`]).
//! - [`action`]: what the engine wants done in the CRM, each with a
//!   deterministic [`ActionKey`] so it happens exactly once.
//! - [`connector`]: the one trait the daemon drives, its cursors, pages,
//!   write outcomes and error classes.
//! - [`inspect`]: what `handoff doctor` learns about an org ([`OrgReport`]).
//! - [`secret`]: [`Secret`], a string that refuses to be printed.
//! - [`stamp`]: how a timestamp field is written (text in JSON, a number
//!   in the store's binary format).
//! - [`redact`]: the one filter every external text passes before it is
//!   logged, stored or shown; it knows every `Secret` handoff holds.

pub mod action;
pub mod calendar;
pub mod connector;
pub mod inspect;
pub mod record;
pub mod redact;
pub mod retry;
pub mod secret;
pub mod stamp;

pub use action::{Action, ActionKey, ActionKind, TaskPriority, TaskPurpose};
pub use calendar::{BusinessCalendar, Holiday, WeeklyWindow, MAX_CALENDARS, MAX_HOLIDAYS, MAX_WEEKLY_WINDOWS};
pub use connector::{
    ApiBudget, Connector, ConnectorError, Cursor, Deletion, ErrorClass, PullPage, Quarantined, Stream, WriteError,
    WriteOutcome,
};
pub use inspect::{FieldInfo, FieldKind, FieldObject, FieldSpec, HistoryTracking, OrgReport, Scopes, StatusValue};
pub use record::{
    Absence, Activity, ActivityKind, Assignment, CrmKind, Direction, FieldChange, Lead, Opportunity, Owner, OwnerKind,
    StatusChange,
};
pub use redact::redact;
pub use retry::{RetryDecision, RetryPolicy};
pub use secret::Secret;

/// Every instant handoff handles is a UTC timestamp; zones are applied only
/// when business time is computed.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
