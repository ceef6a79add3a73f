//! Salesforce REST API emulator.
