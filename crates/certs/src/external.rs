//! Checks on a client certificate signed outside msgrelay (the OpenSSL scripts) before it is registered.

use chrono::{DateTime, Utc};
use msgrelay_core::ClientId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::ParsedExtension;

use super::normalize_serial;
use crate::CertError;

/// What the registry records about a checked certificate.
pub(crate) struct Checked {
    pub serial_hex: String,
    pub fingerprint: String,
    pub not_after: DateTime<Utc>,
}

fn refuse(why: impl std::fmt::Display) -> CertError {
    CertError::Invalid(format!(
        "certificate refused: {why}; sign it with the client CA (pki/client-ca.crt) as scripts/certs/generate_cert.sh does"
    ))
}

/// Parses `cert_pem` and checks: signed by `ca_pem`, CN = `client_id`, clientAuth EKU, not a CA, not expired.
pub(crate) fn check(
    cert_pem: &[u8],
    ca_pem: &[u8],
    client_id: &ClientId,
) -> Result<Checked, CertError> {
    let der = CertificateDer::from_pem_slice(cert_pem)
        .map_err(|e| refuse(format!("not a PEM certificate ({e})")))?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem)
        .map_err(|e| refuse(format!("client CA unreadable ({e})")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| refuse(format!("not an X.509 certificate ({e})")))?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
        .map_err(|e| refuse(format!("client CA unreadable ({e})")))?;

    if cert.issuer() != ca.subject() || cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err(refuse(format!(
            "it is not signed by the client CA (issuer \"{}\")",
            cert.issuer()
        )));
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("");
    if cn != client_id.as_str() {
        return Err(refuse(format!(
            "its common name is {cn:?}, expected the client id {client_id:?}"
        )));
    }
    let mut client_auth = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(eku) => client_auth = eku.client_auth || eku.any,
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err(refuse("it is a CA certificate"))
            }
            _ => {}
        }
    }
    if !client_auth {
        return Err(refuse(
            "it lacks the clientAuth extended key usage (extendedKeyUsage = clientAuth)",
        ));
    }
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    if not_after <= Utc::now() {
        return Err(refuse(format!("it expired at {not_after}")));
    }
    Ok(Checked {
        serial_hex: normalize_serial(&hex::encode(cert.raw_serial()))?,
        fingerprint: msgrelay_tls::fingerprint(&der),
        not_after,
    })
}
