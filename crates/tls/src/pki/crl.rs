//! Certificate revocation lists: signing them with the client CA, and loading them safely.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use super::issue::{from_unix, load_ca, to_offset};
use super::{fsutil, Pki, CLIENT_CA, CRL_FILE, CRL_NUMBER_FILE};
use crate::PkiError;

/// One revoked certificate to list in a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedCert {
    /// Serial as hex (case and `:` separators ignored).
    pub serial_hex: String,
    /// When the revocation was recorded.
    pub revoked_at: DateTime<Utc>,
    /// RFC 5280 reason name: keyCompromise, superseded, cessationOfOperation, ...; `None` omits it.
    pub reason: Option<String>,
}

/// A CRL that parsed, is signed by the expected CA and is fresh enough.
#[derive(Clone, Debug)]
pub struct LoadedCrl {
    /// DER form, ready for `mtls_server_config`.
    pub der: CertificateRevocationListDer<'static>,
    /// When it was signed: of two valid CRLs, the later-signed one is current.
    pub this_update: DateTime<Utc>,
    /// When the issuer promised a newer CRL.
    pub next_update: DateTime<Utc>,
    /// Revoked serials, lowercase hex without separators.
    pub revoked_serials: Vec<String>,
}

/// Maps an RFC 5280 reason name (case-insensitive) to its code.
fn parse_reason(name: &str) -> Result<RevocationReason, PkiError> {
    use RevocationReason::*;
    Ok(match name.to_ascii_lowercase().as_str() {
        "unspecified" => Unspecified,
        "keycompromise" => KeyCompromise,
        "cacompromise" => CaCompromise,
        "affiliationchanged" => AffiliationChanged,
        "superseded" => Superseded,
        "cessationofoperation" => CessationOfOperation,
        "certificatehold" => CertificateHold,
        "removefromcrl" => RemoveFromCrl,
        "privilegewithdrawn" => PrivilegeWithdrawn,
        "aacompromise" => AaCompromise,
        _ => {
            return Err(PkiError::Invalid {
                what: "revocation reason",
                detail: format!(
                    "{name:?}; use one of unspecified, keyCompromise, cACompromise, affiliationChanged, \
                     superseded, cessationOfOperation, certificateHold, removeFromCRL, privilegeWithdrawn, aACompromise"
                ),
            })
        }
    })
}

/// Normalises a serial given as hex (optionally with `:`), checking it is valid.
pub(crate) fn parse_serial(serial_hex: &str) -> Result<Vec<u8>, PkiError> {
    let clean: String = serial_hex.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(clean.to_ascii_lowercase()).map_err(|e| PkiError::Invalid {
        what: "serial",
        detail: format!("{serial_hex:?} is not hex: {e}"),
    })?;
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(PkiError::Invalid {
            what: "serial",
            detail: format!("{serial_hex:?} must be 1 to 20 bytes"),
        });
    }
    Ok(bytes)
}

/// Reads the last CRL number (0 if none was issued yet).
fn read_crl_number(path: &Path) -> Result<u64, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|e| PkiError::malformed(format!("CRL number in {}", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(PkiError::io("reading", path, e)),
    }
}

impl Pki {
    /// Signs a new CRL with the client CA listing `revoked`, next update = now + `validity`;
    /// writes `client-ca.crl` atomically, bumps `crl-number` and returns the PEM.
    pub fn write_crl(
        &self,
        revoked: &[RevokedCert],
        validity: Duration,
    ) -> Result<String, PkiError> {
        let validity = chrono::Duration::from_std(validity).map_err(|e| PkiError::Invalid {
            what: "CRL validity",
            detail: e.to_string(),
        })?;
        let now = Utc::now();
        self.write_crl_with_times(revoked, now, now + validity)
    }

    /// Like [`Pki::write_crl`] with explicit times (tests write already-expired CRLs with it).
    #[doc(hidden)]
    pub fn write_crl_with_times(
        &self,
        revoked: &[RevokedCert],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<String, PkiError> {
        if next_update <= this_update {
            return Err(PkiError::Invalid {
                what: "CRL validity",
                detail: "next update must be after this update".into(),
            });
        }
        self.sign_crl(
            CLIENT_CA,
            CRL_NUMBER_FILE,
            CRL_FILE,
            revoked,
            this_update,
            next_update,
        )
    }

    /// Signs a CRL with CA `ca_stem`, bumping the number in `number_file`, and writes it to `out_file`.
    pub(super) fn sign_crl(
        &self,
        ca_stem: &str,
        number_file: &str,
        out_file: &str,
        revoked: &[RevokedCert],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<String, PkiError> {
        let ca = load_ca(self.dir(), ca_stem)?;
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&parse_serial(&r.serial_hex)?),
                    revocation_time: to_offset(r.revoked_at)?,
                    reason_code: r.reason.as_deref().map(parse_reason).transpose()?,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;

        // Bump the number before writing the CRL: a crash in between leaves a gap, never a reuse.
        let number_path = self.path(number_file);
        let number = read_crl_number(&number_path)? + 1;
        fsutil::write_replace(&number_path, format!("{number}\n").as_bytes(), false)?;

        let params = CertificateRevocationListParams {
            this_update: to_offset(this_update)?,
            next_update: to_offset(next_update)?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&ca.issuer)
            .map_err(|e| PkiError::generate("CRL", e))?;
        let pem = crl.pem().map_err(|e| PkiError::generate("CRL PEM", e))?;
        fsutil::write_replace(&self.path(out_file), pem.as_bytes(), false)?;
        Ok(pem)
    }
}

/// Parses a PEM CRL, verifies it is signed by `ca_pem`'s key and that now < next_update + grace.
pub fn load_crl(crl_pem: &[u8], ca_pem: &[u8], grace: Duration) -> Result<LoadedCrl, PkiError> {
    let der = CertificateRevocationListDer::from_pem_slice(crl_pem)
        .map_err(|e| PkiError::malformed("PEM CRL", e))?;
    let ca_der = CertificateDer::from_pem_slice(ca_pem)
        .map_err(|e| PkiError::malformed("PEM CA certificate", e))?;
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| PkiError::malformed("CRL", e))?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der)
        .map_err(|e| PkiError::malformed("CA certificate", e))?;

    if crl.issuer() != ca.subject() {
        return Err(PkiError::WrongSigner {
            detail: format!(
                "CRL issuer is \"{}\", expected \"{}\"",
                crl.issuer(),
                ca.subject()
            ),
        });
    }
    crl.verify_signature(ca.public_key())
        .map_err(|e| PkiError::WrongSigner {
            detail: format!("signature check failed: {e}"),
        })?;

    let next_update = crl
        .next_update()
        .map(|t| from_unix(t.timestamp()))
        .ok_or_else(|| {
            PkiError::malformed(
                "CRL",
                "it has no next-update time, so staleness cannot be judged",
            )
        })?;
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let deadline = next_update
        .checked_add_signed(grace)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if Utc::now() >= deadline {
        return Err(PkiError::Expired { next_update });
    }
    let this_update = from_unix(crl.last_update().timestamp());
    let revoked_serials = crl
        .iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect();
    drop(crl);
    Ok(LoadedCrl {
        der,
        this_update,
        next_update,
        revoked_serials,
    })
}
