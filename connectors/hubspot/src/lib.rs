//! handoff's hubspot connector.
