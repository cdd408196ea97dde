//! mqtts://: rustls on the ring provider (no aws-lc, no OpenSSL). Trust roots: the PEM
//! `ca_file` when given (a private broker CA, the usual case on a plant network), else the
//! system trust store (/etc/ssl/certs via rustls-native-certs, already in the daemon's
//! tree through reqwest), so no bundled root list has to be kept current.

use std::path::Path;
use std::sync::Arc;

use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::MqttError;

pub(crate) fn transport(ca_file: Option<&Path>) -> Result<Transport, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    let source = if let Some(path) = ca_file {
        let unreadable = |e: &dyn std::fmt::Display| MqttError::Tls(format!("ca-file {}: {e}", path.display()));
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
            roots.add(cert.map_err(|e| unreadable(&e))?).map_err(|e| unreadable(&e))?;
        }
        path.display().to_string()
    } else {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        "the system trust store".to_owned()
    };
    if roots.is_empty() {
        return Err(MqttError::Tls(format!("no CA certificate found in {source}")));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))))
}
