//! Where "now" comes from. The connector is handed its clock when it is
//! built (there is no default to forget to replace): the daemon passes the
//! instant its tick runs at, tests the sandbox's simulated clock. Windows,
//! token lifetimes and the daily budget are counted on it.
//!
//! Waiting (backoff, pauses, pacing, deadlines) is counted on tokio's
//! clock instead, so tests can pause and move it.

use std::sync::Arc;

use handoff_model::Timestamp;

/// The CRM's "now".
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Any `Fn() -> Timestamp` is a clock.
impl<F: Fn() -> Timestamp + Send + Sync> Clock for F {
    fn now(&self) -> Timestamp {
        self()
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock shared by the parts of one connector.
pub type SharedClock = Arc<dyn Clock>;
