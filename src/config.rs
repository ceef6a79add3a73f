//! The config file: parse and validate.
