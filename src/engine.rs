//! The pure SLA evaluation engine.
