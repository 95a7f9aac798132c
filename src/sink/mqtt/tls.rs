//! TLS for `mqtts://`: the CA bundle and the optional client certificate,
//! read and checked once at start, so that a bad file stops tutti with its
//! name rather than failing every reconnection.

use crate::config::MqttSettings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Debian's CA bundle, trusted for `mqtts://` when no `ca_file` is set.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read the TLS file: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// A PEM parse error as text: its markers and lines are bytes, which the
/// error's own Display shows as a list of numbers.
fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    match e {
        Error::MissingSectionEnd { end_marker } => {
            format!(
                "a section lacks its `-----END {}-----` line",
                text(end_marker)
            )
        }
        Error::IllegalSectionStart { line } => {
            format!("a section starts with the malformed line {:?}", text(line))
        }
        other => other.to_string(),
    }
}

/// The TLS client configuration of `s`.
pub fn client_config(s: &MqttSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    // One crypto provider, ring, for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bad = |path: &Path, reason: String| TlsError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let ca_path = s.ca_file.as_deref().unwrap_or(Path::new(SYSTEM_CAS));
    let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let pem = read(path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                bad(
                    path,
                    format!("not a PEM certificate file ({})", pem_reason(&e)),
                )
            })?;
        if certs.is_empty() {
            return Err(bad(path, "holds no PEM certificate".into()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(certs(ca_path)?);
    if roots.is_empty() {
        return Err(bad(
            ca_path,
            format!("none of its {ignored} certificate(s) can serve as a CA"),
        ));
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (&s.client_cert, &s.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = certs(cert_path)?;
            let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|e| {
                bad(
                    key_path,
                    format!("no usable PEM private key ({})", pem_reason(&e)),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                let e = e.to_string();
                let hint = if e.contains("UnsupportedCertVersion") {
                    "is an X.509 v1 certificate, and TLS needs v3 \
                     (openssl x509 -req makes v3 when given -extfile)"
                        .to_string()
                } else {
                    format!("does not go with the key {}: {e}", key_path.display())
                };
                bad(cert_path, format!("client certificate {hint}"))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
