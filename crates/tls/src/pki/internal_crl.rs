//! The internal CA's CRL: how a service certificate (proxy, worker) that leaked is taken out of
//! trust. Service certificates are long-lived (2 years) and the internal API checks every
//! handshake and every request against this list, which the main server reloads while running.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::issue::{from_unix, leaf_params, load_ca, new_key, Usage};
use super::{
    fingerprint, fsutil, load_crl, IssuedCert, LoadedCrl, Pki, RevokedCert, INTERNAL_CA,
    ISSUING_CA_DAYS,
};
use crate::PkiError;

/// The internal CA's CRL (PEM); absent until a service certificate is first revoked.
pub const INTERNAL_CRL_FILE: &str = "internal-ca.crl";
/// The last internal CRL number issued.
const INTERNAL_CRL_NUMBER_FILE: &str = "internal-crl-number";
/// The service certificates that can be revoked (the main server's and portal's own certificates
/// are server certificates; nobody presents them to the internal API).
pub const REVOCABLE_SERVICES: [&str; 2] = ["proxy", "worker"];

impl Pki {
    /// Revokes the service certificate `<service>.crt` (`proxy` or `worker`): lists its serial on
    /// the internal CRL, moves the pair aside (`<service>.crt.revoked-<serial>`) and issues a new
    /// one. Returns the revoked serial. The new certificate must be copied to the service's host
    /// and the service restarted; the main server refuses the old one within
    /// `proxy.revocation_refresh_secs`.
    pub fn revoke_service(&self, service: &str, reason: Option<&str>) -> Result<String, PkiError> {
        if !REVOCABLE_SERVICES.contains(&service) {
            return Err(PkiError::Invalid {
                what: "service",
                detail: format!("{service:?}; revocable are proxy and worker"),
            });
        }
        let crt = self.path(&format!("{service}.crt"));
        let key = self.path(&format!("{service}.key"));
        let der = super::load_certs_pem(&fsutil::read(&crt)?)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0])
            .map_err(|e| PkiError::malformed(format!("certificate in {}", crt.display()), e))?;
        let serial = hex::encode(cert.raw_serial());

        let mut revoked = self.internal_revoked()?;
        if !revoked.iter().any(|r| r.serial_hex == serial) {
            revoked.push(RevokedCert {
                serial_hex: serial.clone(),
                revoked_at: Utc::now(),
                reason: reason.map(str::to_owned),
            });
        }
        let now = Utc::now();
        // Nobody re-signs this list on a schedule, and the verifier does not enforce next-update:
        // it lives as long as the CA whose certificates it revokes.
        self.sign_crl(
            INTERNAL_CA,
            INTERNAL_CRL_NUMBER_FILE,
            INTERNAL_CRL_FILE,
            &revoked,
            now - chrono::Duration::minutes(5),
            now + chrono::Duration::days(ISSUING_CA_DAYS),
        )?;
        for (from, kind) in [(&crt, "crt"), (&key, "key")] {
            let to = self.path(&format!("{service}.{kind}.revoked-{serial}"));
            std::fs::rename(from, &to)
                .map_err(|e| PkiError::io("moving aside", from.clone(), e))?;
        }
        self.init(&[])?;
        Ok(serial)
    }

    /// The internal CRL, verified against the internal CA; `None` when no service certificate was
    /// ever revoked.
    pub fn internal_crl(&self) -> Result<Option<LoadedCrl>, PkiError> {
        let path = self.path(INTERNAL_CRL_FILE);
        let pem = match std::fs::read(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PkiError::io("reading", path, e)),
        };
        let ca = fsutil::read(&self.path(&format!("{INTERNAL_CA}.crt")))?;
        load_crl(&pem, &ca, Duration::MAX).map(Some)
    }

    /// A `proxy` or `worker` service certificate (CN `msgrelay-<service>`, clientAuth, signed by
    /// the internal CA) with an explicit validity window, held in memory only; the attack suite
    /// presents an expired one to the internal API with it.
    #[doc(hidden)]
    pub fn issue_service_with_validity(
        &self,
        service: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedCert, PkiError> {
        if !REVOCABLE_SERVICES.contains(&service) {
            return Err(PkiError::Invalid {
                what: "service",
                detail: format!("{service:?}; service certificates are proxy and worker"),
            });
        }
        let ca = load_ca(self.dir(), INTERNAL_CA)?;
        let key_pair = new_key()?;
        let cn = format!("msgrelay-{service}");
        let (params, serial_hex) =
            leaf_params(&cn, None, &[], Usage::Client, not_before, not_after)?;
        let cert = params
            .signed_by(&key_pair, &ca.issuer)
            .map_err(|e| PkiError::generate(format!("service certificate {cn}"), e))?;
        Ok(IssuedCert {
            serial_hex,
            fingerprint: fingerprint(cert.der()),
            not_after: from_unix(params.not_after.unix_timestamp()),
            cert_pem: cert.pem(),
            key_pem: key_pair.serialize_pem(),
        })
    }

    /// The entries of the current internal CRL, with their revocation times.
    fn internal_revoked(&self) -> Result<Vec<RevokedCert>, PkiError> {
        let Some(loaded) = self.internal_crl()? else {
            return Ok(Vec::new());
        };
        let (_, crl) = x509_parser::parse_x509_crl(&loaded.der)
            .map_err(|e| PkiError::malformed("internal CRL", e))?;
        Ok(crl
            .iter_revoked_certificates()
            .map(|r| RevokedCert {
                serial_hex: hex::encode(r.raw_serial()),
                revoked_at: from_unix(r.revocation_date.timestamp()),
                reason: None,
            })
            .collect())
    }
}
