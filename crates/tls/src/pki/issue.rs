//! Building and signing certificates with rcgen: keys, serials, CA and leaf parameters.

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use super::fsutil;
use crate::PkiError;
use std::path::Path;

/// CA certificates live ten years: rotating a CA means re-issuing every client bundle.
pub(crate) const CA_DAYS: i64 = 3650;
/// Service certificates live two years; `init` re-issues missing ones.
pub(crate) const SERVICE_DAYS: i64 = 730;
/// Backdating of not_before so that peers with slightly slow clocks accept a fresh certificate.
const CLOCK_SKEW_MINUTES: i64 = 5;

/// What a leaf certificate may be used for (its extended key usage).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Usage {
    /// TLS server (serverAuth).
    Server,
    /// TLS client (clientAuth).
    Client,
}

/// A loaded CA: its certificate PEM and an issuer able to sign with its key.
pub(crate) struct Ca {
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

/// A fresh ECDSA P-256 key pair.
pub(crate) fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| PkiError::generate("ECDSA P-256 key", e))
}

/// A random positive 16-byte serial and its lowercase hex form.
///
/// The top bit is cleared (positive INTEGER) and the next one set, so the DER encoding is always
/// exactly these 16 bytes: the hex we record equals what parsers report for the certificate.
pub(crate) fn random_serial() -> (SerialNumber, String) {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    (SerialNumber::from_slice(&bytes), hex::encode(bytes))
}

/// Converts chrono to the `time` type rcgen uses (second precision is all X.509 keeps).
pub(crate) fn to_offset(dt: DateTime<Utc>) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(dt.timestamp()).map_err(|e| PkiError::Invalid {
        what: "date",
        detail: e.to_string(),
    })
}

/// Converts a Unix timestamp to chrono.
pub(crate) fn from_unix(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The default validity window: a few minutes ago until `days` from now.
pub(crate) fn window(days: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    (
        now - chrono::Duration::minutes(CLOCK_SKEW_MINUTES),
        now + chrono::Duration::days(days),
    )
}

fn name(cn: &str, ou: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "msgrelay");
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// Parameters of a self-signed CA that may sign certificates and CRLs, and nothing else.
pub(crate) fn ca_params(cn: &str) -> Result<CertificateParams, PkiError> {
    // Path length 0: these CAs sign leaves only, never another CA.
    ca_params_with(
        cn,
        CA_DAYS,
        0,
        vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ],
    )
}

/// Parameters of a CA valid `days` from now that may sign CAs down to `path_len` levels below it.
pub(crate) fn ca_params_with(
    cn: &str,
    days: i64,
    path_len: u8,
    key_usages: Vec<KeyUsagePurpose>,
) -> Result<CertificateParams, PkiError> {
    let (not_before, not_after) = window(days);
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn, None);
    p.serial_number = Some(random_serial().0);
    p.not_before = to_offset(not_before)?;
    p.not_after = to_offset(not_after)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = key_usages;
    Ok(p)
}

/// Parameters of a leaf certificate.
pub(crate) fn leaf_params(
    cn: &str,
    ou: Option<&str>,
    sans: &[&str],
    usage: Usage,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(CertificateParams, String), PkiError> {
    if not_after <= not_before {
        return Err(PkiError::Invalid {
            what: "validity",
            detail: "not_after must be after not_before".into(),
        });
    }
    // CertificateParams::new turns IP literals into IP SANs and the rest into DNS SANs.
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).map_err(|e| PkiError::Invalid {
        what: "subject alternative name",
        detail: e.to_string(),
    })?;
    let (serial, serial_hex) = random_serial();
    p.distinguished_name = name(cn, ou);
    p.serial_number = Some(serial);
    p.not_before = to_offset(not_before)?;
    p.not_after = to_offset(not_after)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![match usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    Ok((p, serial_hex))
}

/// Validates a domain that becomes both a SAN and part of a file name.
pub(crate) fn check_domain(domain: &str) -> Result<(), PkiError> {
    msgrelay_core::DomainName::parse(domain)
        .map(|_| ())
        .map_err(|e| PkiError::Invalid {
            what: "domain",
            detail: format!("{domain:?}: {}", e.reason),
        })
}

/// Loads a CA (certificate + key) from `<dir>/<stem>.crt` / `.key`.
pub(crate) fn load_ca(dir: &Path, stem: &str) -> Result<Ca, PkiError> {
    let crt = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let cert_pem = String::from_utf8(fsutil::read(&crt)?)
        .map_err(|e| PkiError::malformed(format!("certificate in {}", crt.display()), e))?;
    let key_pem = String::from_utf8(fsutil::read(&key)?)
        .map_err(|e| PkiError::malformed(format!("key in {}", key.display()), e))?;
    let key_pair = KeyPair::from_pem(&key_pem)
        .map_err(|e| PkiError::malformed(format!("key in {}", key.display()), e))?;
    // rcgen does not check that the key belongs to the certificate; a mismatch would silently
    // produce certificates nobody can verify, so refuse it here.
    let der = super::pem::load_certs_pem(cert_pem.as_bytes())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der[0])
        .map_err(|e| PkiError::malformed(format!("certificate in {}", crt.display()), e))?;
    if parsed.public_key().subject_public_key.data.as_ref() != key_pair.public_key_raw() {
        return Err(PkiError::Invalid {
            what: "CA key",
            detail: format!("{} does not belong to {}", key.display(), crt.display()),
        });
    }
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key_pair)
        .map_err(|e| PkiError::malformed(format!("certificate in {}", crt.display()), e))?;
    Ok(Ca { issuer })
}
