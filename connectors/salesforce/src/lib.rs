//! handoff's salesforce connector.
