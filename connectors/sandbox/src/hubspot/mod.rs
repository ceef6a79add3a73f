//! HubSpot CRM v3 API emulator.

use std::sync::Arc;

use crate::server::{Emulator, SandboxError, Shared};

/// Placeholder until the emulator lands: serves nothing but the admin API.
pub fn build(_shared: Arc<Shared>) -> Result<Emulator, SandboxError> {
    Ok(Emulator { router: axum::Router::new(), credentials: serde_json::json!({}) })
}
