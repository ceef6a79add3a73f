//! Listener, TLS and the admin API.
