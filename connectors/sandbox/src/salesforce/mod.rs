//! Salesforce REST API emulator.
//!
//! Serves the paths handoff and its Salesforce connector use — the OAuth
//! token endpoint, `query`/`queryAll` with server-side cursors, sObject and
//! collection writes, upsert by external id, `describe`, `limits`,
//! `updated`/`deleted` — with the real service's status codes, error
//! bodies and `Sforce-Limit-Info` header, over records materialised from
//! the synthetic org as the simulated clock passes each event.
//!
//! # Layout
//! - [`schema`]: the sObjects and fields (what `describe` reports).
//! - [`store`]: record tables with a `(SystemModstamp, Id)` index and a parent
//!   index per child relationship field, ids, datetimes.
//! - [`soql`]: the SOQL subset: parse, bind, evaluate, render.
//! - [`state`]: all data behind one lock; validated writes, queries, cursors.
//! - [`materialise`]: the synthetic org timeline → records (and `LeadHistory`).
//! - [`oauth`]: grants, sessions, refresh tokens.
//! - [`limits`]: the rolling daily allocations (API requests, Bulk API).
//! - [`bulk`]: Bulk API 2.0 query jobs (`/jobs/query`), CSV results.
//! - [`composite`]: `/composite`, subrequests with references, one call.
//! - [`errors`]: the three error body shapes.
//! - [`routes`]: the real paths; [`admin`]: `/__sandbox/salesforce/…`.

pub mod admin;
pub mod bulk;
pub mod composite;
pub mod errors;
pub mod limits;
pub mod materialise;
pub mod oauth;
pub mod routes;
pub mod schema;
pub mod soql;
pub mod state;
pub mod store;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::server::{Emulator, SandboxError, Shared};
use oauth::AppConfig;
use state::SfState;

/// The API version clients are pointed at (simple-salesforce and the
/// connector use v62.0).
pub const API_VERSION: &str = "62.0";

/// The emulator: the shared sandbox services plus the Salesforce state.
pub struct Salesforce {
    pub shared: Arc<Shared>,
    state: Mutex<SfState>,
}

impl Salesforce {
    /// Lock the state after applying every timeline event up to `now`.
    pub fn sync(&self, now: DateTime<Utc>) -> MutexGuard<'_, SfState> {
        // A panic while holding the lock leaves consistent-enough data for
        // a test server; keep serving.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        materialise::catch_up(&mut st, &self.shared.org, now);
        st
    }
}

fn emulator_error(reason: String) -> SandboxError {
    SandboxError::Emulator { crm: handoff_model::CrmKind::Salesforce, reason }
}

/// Key pair of the connected app's certificate: the sandbox keeps the
/// public half to verify JWT assertions and writes the private half for
/// clients to sign with.
struct JwtKeys {
    private_pem: String,
    public_pem: String,
}

fn generate_keys() -> Result<JwtKeys, SandboxError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048)
        .map_err(|e| emulator_error(format!("cannot generate the JWT key pair: {e}")))?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| emulator_error(format!("cannot encode the JWT private key: {e}")))?
        .to_string();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| emulator_error(format!("cannot encode the JWT public key: {e}")))?;
    Ok(JwtKeys { private_pem, public_pem })
}

fn write_file(path: &Path, contents: &str) -> Result<(), SandboxError> {
    std::fs::write(path, contents).map_err(|source| SandboxError::WorkDir { path: path.to_path_buf(), source })
}

/// Build the emulator: schema, seeded users/queues/calendars, the connected
/// app (with a fresh JWT key pair under `work_dir`), an initial session and
/// refresh token, and the router.
pub fn build(shared: Arc<Shared>) -> Result<Emulator, SandboxError> {
    // The RSA key pair takes about as long as materialising a 10k-lead org:
    // make both at once (the state needs the public key only for JWT grants).
    let keygen = std::thread::spawn(generate_keys);

    let org_id = store::make_id("00D", state::ORG_POD, 1);
    let mut app = AppConfig {
        client_id: format!("3MVG9sandbox.{}", uuid::Uuid::new_v4().simple()),
        client_secret: uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        username: "integration@handoff-sandbox.example".to_string(),
        user_id: materialise::integration_user_id(),
        org_id,
        jwt_public_key_pem: String::new(),
        audiences: vec![
            "https://login.salesforce.com".to_string(),
            "https://test.salesforce.com".to_string(),
            shared.base_url.clone(),
        ],
        instance_url: shared.base_url.clone(),
    };
    let mut st = SfState::new(app.clone());
    materialise::seed(&mut st, &shared.org);
    let now = shared.clock.now();
    materialise::catch_up(&mut st, &shared.org, now);

    let keys =
        keygen.join().map_err(|_| emulator_error("the JWT key pair generator stopped unexpectedly".to_string()))??;
    let private_key_path = shared.work_dir.join("salesforce-jwt-private-key.pem");
    let public_key_path = shared.work_dir.join("salesforce-jwt-public-key.pem");
    write_file(&private_key_path, &keys.private_pem)?;
    write_file(&public_key_path, &keys.public_pem)?;
    app.jwt_public_key_pem = keys.public_pem;
    st.app.jwt_public_key_pem = app.jwt_public_key_pem.clone();
    let access_token = st.tokens.issue_session(&app, &app.user_id, now);
    let refresh_token = st.tokens.issue_refresh_token(&app, &app.user_id);

    let credentials = json!({
        "instance_url": shared.base_url,
        "token_url": format!("{}/services/oauth2/token", shared.base_url),
        "api_version": API_VERSION,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "username": app.username,
        "jwt_audience": "https://login.salesforce.com",
        "jwt_private_key_path": private_key_path.display().to_string(),
        "access_token": access_token,
        "refresh_token": refresh_token,
    });
    let sf = Arc::new(Salesforce { shared, state: Mutex::new(st) });
    let router = routes::router(sf.clone()).merge(admin::router(sf));
    Ok(Emulator { router, credentials })
}
