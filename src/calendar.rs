//! Business-time arithmetic.
