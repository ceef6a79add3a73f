//! The `handoff` command line.
