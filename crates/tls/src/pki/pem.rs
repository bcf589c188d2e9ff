//! PEM parsing and certificate fingerprints, shared by the PKI, the server and the client side.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::PkiError;

/// Lowercase hex SHA-256 of a DER certificate, no separators
/// (equals `openssl x509 -fingerprint -sha256` without colons, lowercased).
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Parses every `CERTIFICATE` block of a PEM document; fails if there is none.
pub fn load_certs_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::malformed("PEM certificate", e))?;
    if certs.is_empty() {
        return Err(PkiError::malformed(
            "PEM certificate",
            "no CERTIFICATE block found",
        ));
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, SEC1 or PKCS#1) of a PEM document.
pub fn load_key_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| PkiError::malformed("PEM private key", e))
}

/// Subject common name of a DER certificate, if it has a UTF-8 one.
/// Subject CN and serial (lowercase hex) of a DER certificate, parsed once.
pub(crate) fn common_name_and_serial(der: &[u8]) -> (Option<String>, Option<String>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return (None, None);
    };
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    (cn, Some(hex::encode(cert.raw_serial())))
}
