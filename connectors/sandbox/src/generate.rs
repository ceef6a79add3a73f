//! Deterministic synthetic org generation from an [`OrgConfig`].

use crate::org::{OrgConfig, SyntheticOrg};

/// Generate the org for `cfg`; the same config always yields the same org.
pub fn generate(cfg: &OrgConfig) -> SyntheticOrg {
    SyntheticOrg {
        config: cfg.clone(),
        users: Vec::new(),
        queues: Vec::new(),
        calendars: Vec::new(),
        leads: Vec::new(),
        events: Vec::new(),
    }
}
