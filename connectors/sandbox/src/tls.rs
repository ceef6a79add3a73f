//! Certificates for serving HTTPS on loopback.
//!
//! Clients such as simple-salesforce build every URL as
//! `https://{instance}`, so the sandbox must speak TLS. It generates a
//! throwaway CA and a leaf for `127.0.0.1`, `::1` and `localhost`, writes the
//! CA certificate (PEM) where the client can be told to trust it, and keeps
//! the leaf key in memory only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::server::SandboxError;

/// File name of the CA certificate inside the work directory.
pub const CA_CERT_FILE: &str = "sandbox-ca.pem";

/// A ready server configuration plus where its CA certificate was written.
pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    pub ca_cert_path: PathBuf,
    /// The same CA certificate, PEM, for in-process clients.
    pub ca_cert_pem: String,
}

fn tls_err(what: &str) -> impl FnOnce(rcgen::Error) -> SandboxError + '_ {
    move |e| SandboxError::Tls(format!("{what}: {e}"))
}

/// Generate a CA and a loopback leaf, write the CA PEM into `work_dir`, and
/// build a rustls server configuration (ring provider, h2 + http/1.1).
pub fn generate(work_dir: &Path) -> Result<TlsMaterial, SandboxError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "handoff sandbox CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().map_err(tls_err("CA key"))?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err("CA certificate"))?;

    let names = vec!["127.0.0.1".to_string(), "::1".to_string(), "localhost".to_string()];
    let mut leaf_params = CertificateParams::new(names).map_err(tls_err("leaf parameters"))?;
    leaf_params.distinguished_name.push(DnType::CommonName, "handoff sandbox");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_key = KeyPair::generate().map_err(tls_err("leaf key"))?;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(tls_err("leaf certificate"))?;

    let ca_cert_pem = ca_cert.pem();
    let ca_cert_path = work_dir.join(CA_CERT_FILE);
    std::fs::write(&ca_cert_path, &ca_cert_pem)
        .map_err(|source| SandboxError::WorkDir { path: ca_cert_path.clone(), source })?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SandboxError::Tls(format!("protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| SandboxError::Tls(format!("server certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(TlsMaterial { server_config: Arc::new(config), ca_cert_path, ca_cert_pem })
}
