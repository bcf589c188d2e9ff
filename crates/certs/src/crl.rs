//! The client CA's CRL, always rebuilt from the store's revoked certificates.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use msgrelay_store::ClientCertificate;
use msgrelay_tls::{load_crl, Pki, RevokedCert};

use super::{ms_to_utc, normalize_serial};
use crate::CertError;

/// Validity of every CRL msgrelay signs; it is re-signed once half of it has passed.
pub const CRL_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The CRL just written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlInfo {
    /// When the CRL stops being trusted (plus the proxy's grace).
    pub next_update: DateTime<Utc>,
    /// How many certificates it lists.
    pub revoked: usize,
}

/// RFC 5280 reason names, in their canonical spelling.
const REASONS: [&str; 10] = [
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "removeFromCRL",
    "privilegeWithdrawn",
    "aACompromise",
];

/// The canonical spelling of a reason name given in any case; others are refused with the list.
pub(crate) fn canonical_reason(reason: &str) -> Result<&'static str, CertError> {
    REASONS
        .iter()
        .copied()
        .find(|r| r.eq_ignore_ascii_case(reason.trim()))
        .ok_or_else(|| {
            CertError::Invalid(format!(
                "unknown revocation reason {reason:?}; use one of: {}",
                REASONS.join(", ")
            ))
        })
}

fn revoked_entries(revoked: &[ClientCertificate]) -> Vec<RevokedCert> {
    revoked
        .iter()
        .map(|c| RevokedCert {
            serial_hex: c.serial_hex.clone(),
            revoked_at: ms_to_utc(c.revoked_at_ms.unwrap_or(c.created_at_ms)),
            // Reasons written by other front ends may be free text; the CRL only carries RFC 5280 ones.
            reason: c
                .revoke_reason
                .as_deref()
                .and_then(|r| canonical_reason(r).ok())
                .map(str::to_owned),
        })
        .collect()
}

/// Signs and writes the CRL for `revoked`, then reads it back (which also checks the signature).
pub(crate) fn write(pki: &Pki, revoked: &[ClientCertificate]) -> Result<CrlInfo, CertError> {
    let pem = pki.write_crl(&revoked_entries(revoked), CRL_VALIDITY)?;
    let loaded = load_crl(pem.as_bytes(), &pki.read("client-ca.crt")?, Duration::ZERO)?;
    tracing::info!(revoked = loaded.revoked_serials.len(), next_update = %loaded.next_update, "client CRL signed");
    Ok(CrlInfo {
        next_update: loaded.next_update,
        revoked: loaded.revoked_serials.len(),
    })
}

/// True if the CRL on disk is missing, invalid, lists other serials than `revoked`, or has less
/// than half of [`CRL_VALIDITY`] left.
pub(crate) fn is_due(pki: &Pki, revoked: &[ClientCertificate]) -> Result<bool, CertError> {
    let Ok(crl_pem) = pki.read(msgrelay_tls::pki::CRL_FILE) else {
        return Ok(true);
    };
    let ca_pem = pki.read("client-ca.crt")?;
    let Ok(loaded) = load_crl(&crl_pem, &ca_pem, Duration::ZERO) else {
        return Ok(true);
    };
    let half = chrono::Duration::from_std(CRL_VALIDITY / 2).unwrap_or(chrono::Duration::days(3));
    if loaded.next_update - Utc::now() < half {
        return Ok(true);
    }
    let on_disk: BTreeSet<String> = loaded
        .revoked_serials
        .iter()
        .filter_map(|s| normalize_serial(s).ok())
        .collect();
    let in_store: BTreeSet<String> = revoked
        .iter()
        .filter_map(|c| normalize_serial(&c.serial_hex).ok())
        .collect();
    Ok(on_disk != in_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_canonicalised() {
        assert_eq!(canonical_reason("KEYCOMPROMISE").unwrap(), "keyCompromise");
        assert_eq!(canonical_reason("superseded").unwrap(), "superseded");
        assert!(canonical_reason("lost laptop")
            .unwrap_err()
            .to_string()
            .contains("keyCompromise"));
    }
}
