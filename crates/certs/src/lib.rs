//! The client certificate lifecycle: issue, renew, revoke, CRL upkeep, listing, bundles, and
//! registering certificates signed outside msgrelay (the OpenSSL scripts). Used by the admin CLI,
//! the portal and the main server (CRL upkeep); it has no command-line or network front end.
//! The store's `client_certificates` table is the source of truth; the CRL file is always
//! regenerated from it, never edited.

mod bundle;
mod crl;
mod error;
mod external;
mod rsa_leaf;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use msgrelay_core::{ClientId, ClientStatus};
use msgrelay_store::{Client, ClientCertificate, NewCertificate, Store, StoreError};
use msgrelay_tls::{IssuedCert, Pki};

pub use bundle::{random_password, IssuedBundle};
pub use crl::{CrlInfo, CRL_VALIDITY};
pub use error::CertError;

use crate::bundle::{remove_bundle, write_bundle};

/// Key type of a new client certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 (default; what every msgrelay service uses).
    #[default]
    EcdsaP256,
    /// RSA 2048 bits, for clients whose TLS stack cannot do ECDSA.
    Rsa2048,
    /// RSA 3072 bits.
    Rsa3072,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order the CLI lists them.
    pub const ALL: [KeyAlgorithm; 3] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
    ];

    /// The name on the command line and in forms (`ecdsa-p256`, `rsa-2048`, `rsa-3072`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown key type {s:?}; use ecdsa-p256, rsa-2048 or rsa-3072"))
    }
}

/// One certificate as `msgrelay certs list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    pub client_id: ClientId,
    pub serial_hex: String,
    pub fingerprint: String,
    pub domain: String,
    pub not_after: DateTime<Utc>,
    /// As the proxy enforces it.
    pub status: ClientStatus,
}

/// Certificate operations over one PKI directory and one store.
#[derive(Clone, Debug)]
pub struct CertAdmin {
    pki: Pki,
    store: Store,
}

fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Lowercase hex without `:` and without leading zero bytes (DER may add one to keep a serial
/// positive; `openssl x509 -serial` omits it), so one serial has one spelling everywhere.
pub(crate) fn normalize_serial(serial: &str) -> Result<String, CertError> {
    let hex: String = serial
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let mut hex = hex.strip_prefix("0x").unwrap_or(&hex).to_owned();
    if hex.len() % 2 == 1 {
        hex.insert(0, '0');
    }
    let mut bytes = hex::decode(&hex).map_err(|_| {
        CertError::Invalid(format!(
            "serial {serial:?} is not hexadecimal; copy it from `msgrelay certs list` or `openssl x509 -noout -serial`"
        ))
    })?;
    while bytes.len() > 1 && bytes[0] == 0 {
        bytes.remove(0);
    }
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(CertError::Invalid(format!(
            "serial {serial:?} must be 1 to 20 bytes"
        )));
    }
    Ok(hex::encode(bytes))
}

impl CertAdmin {
    /// Certificate operations on `pki` and `store`.
    pub fn new(pki: Pki, store: Store) -> Self {
        Self { pki, store }
    }

    /// The PKI directory handle.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The store handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn client(&self, client_id: &ClientId) -> Result<Client, CertError> {
        self.store.get_client(client_id).await?.ok_or_else(|| {
            CertError::NotFound(format!(
                "client {client_id} does not exist; create it first with \
                 `msgrelay admin client create --client-id {client_id} --owner USER --domain DOMAIN`"
            ))
        })
    }

    /// Issues a certificate for an existing client, writes the bundle to `out_dir` and registers the
    /// certificate (fingerprint, serial, expiry). `p12_password` `None` → a random one in `client.p12.pass`.
    pub async fn issue_client(
        &self,
        client_id: &ClientId,
        domain: &str,
        days: u32,
        out_dir: &Path,
        key: KeyAlgorithm,
        p12_password: Option<String>,
    ) -> Result<IssuedBundle, CertError> {
        let client = self.client(client_id).await?;
        if !client.domain.eq_ignore_ascii_case(domain) {
            return Err(CertError::Invalid(format!(
                "client {client_id} is registered for domain {}, not {domain}; use --domain {} \
                 (a client serves one domain; create another client for another domain)",
                client.domain, client.domain
            )));
        }
        let issued = self
            .issue_cert(client_id, &client.domain, days, key)
            .await?;
        let bundle = write_bundle(
            &self.pki,
            client_id,
            &client.domain,
            &issued,
            out_dir,
            p12_password,
        )?;
        // Files first, registration second: a failure in between leaves an unregistered (useless,
        // harmless) bundle rather than a registered certificate whose key is lost.
        if let Err(e) = self.register(client_id, &issued).await {
            remove_bundle(out_dir);
            return Err(e);
        }
        tracing::info!(client_id = %client_id, serial = %issued.serial_hex, "client certificate issued");
        Ok(bundle)
    }

    /// Issues a new certificate for the client's domain (ECDSA P-256); the old ones stay valid until revoked.
    pub async fn renew(
        &self,
        client_id: &ClientId,
        out_dir: &Path,
        days: u32,
    ) -> Result<IssuedBundle, CertError> {
        self.renew_with(client_id, out_dir, days, KeyAlgorithm::default(), None)
            .await
    }

    /// [`CertAdmin::renew`] with a choice of key type and PKCS#12 password.
    pub async fn renew_with(
        &self,
        client_id: &ClientId,
        out_dir: &Path,
        days: u32,
        key: KeyAlgorithm,
        p12_password: Option<String>,
    ) -> Result<IssuedBundle, CertError> {
        let client = self.client(client_id).await?;
        self.issue_client(client_id, &client.domain, days, out_dir, key, p12_password)
            .await
    }

    async fn issue_cert(
        &self,
        client_id: &ClientId,
        domain: &str,
        days: u32,
        key: KeyAlgorithm,
    ) -> Result<IssuedCert, CertError> {
        match key {
            KeyAlgorithm::EcdsaP256 => {
                Ok(self.pki.issue_client(client_id.as_str(), domain, days)?)
            }
            KeyAlgorithm::Rsa2048 => {
                rsa_leaf::issue(&self.pki, client_id, domain, days, 2048).await
            }
            KeyAlgorithm::Rsa3072 => {
                rsa_leaf::issue(&self.pki, client_id, domain, days, 3072).await
            }
        }
    }

    async fn register(&self, client_id: &ClientId, issued: &IssuedCert) -> Result<(), CertError> {
        let cert = NewCertificate {
            serial_hex: normalize_serial(&issued.serial_hex)?,
            fingerprint: issued.fingerprint.clone(),
            client_id: client_id.clone(),
            not_after_ms: issued.not_after.timestamp_millis(),
        };
        self.store.add_certificate(&cert).await?;
        Ok(())
    }

    /// Revokes one certificate (idempotent) and re-signs the CRL.
    pub async fn revoke_serial(
        &self,
        serial_hex: &str,
        reason: Option<&str>,
    ) -> Result<CrlInfo, CertError> {
        let serial = normalize_serial(serial_hex)?;
        let reason = reason.map(crl::canonical_reason).transpose()?;
        self.store.revoke_certificate(&serial, reason).await.map_err(|e| match e {
            StoreError::NotFound(_) => CertError::NotFound(format!(
                "no certificate with serial {serial} is registered; check `msgrelay certs list` \
                 (a certificate made with the OpenSSL scripts must be registered with `msgrelay certs register` first)"
            )),
            e => e.into(),
        })?;
        tracing::info!(serial = %serial, "client certificate revoked");
        self.regenerate_crl().await
    }

    /// Revokes every not yet revoked certificate of a client and re-signs the CRL.
    pub async fn revoke_client(
        &self,
        client_id: &ClientId,
        reason: Option<&str>,
    ) -> Result<CrlInfo, CertError> {
        self.client(client_id).await?;
        let reason = reason.map(crl::canonical_reason).transpose()?;
        let certs = self.store.list_certificates(Some(client_id)).await?;
        if certs.is_empty() {
            return Err(CertError::NotFound(format!(
                "client {client_id} has no certificates; to block the client itself use `msgrelay admin client disable --client-id {client_id}`"
            )));
        }
        for c in certs.iter().filter(|c| c.revoked_at_ms.is_none()) {
            self.store.revoke_certificate(&c.serial_hex, reason).await?;
            tracing::info!(client_id = %client_id, serial = %c.serial_hex, "client certificate revoked");
        }
        self.regenerate_crl().await
    }

    /// Signs a new CRL (valid [`CRL_VALIDITY`]) listing every revoked certificate of the store.
    pub async fn regenerate_crl(&self) -> Result<CrlInfo, CertError> {
        let revoked = self.store.revoked_certificates().await?;
        crl::write(&self.pki, &revoked)
    }

    /// Re-signs the CRL when it is missing, unreadable, out of step with the store, or has less than
    /// half of [`CRL_VALIDITY`] left; the main server calls this periodically so a running proxy never
    /// sees it expire. Returns the new CRL's details if it re-signed.
    pub async fn refresh_crl_if_due(&self) -> Result<Option<CrlInfo>, CertError> {
        let revoked = self.store.revoked_certificates().await?;
        if crl::is_due(&self.pki, &revoked)? {
            return crl::write(&self.pki, &revoked).map(Some);
        }
        Ok(None)
    }

    /// Every registered certificate; with `expiring_within`, only usable ones (not revoked, not yet
    /// expired) that expire within that time.
    pub async fn list(
        &self,
        expiring_within: Option<chrono::Duration>,
    ) -> Result<Vec<CertRow>, CertError> {
        let clients = self.store.list_clients(None).await?;
        let certs = self.store.list_certificates(None).await?;
        let now = Utc::now();
        let rows = certs
            .into_iter()
            .map(|c| row(&clients, c, now))
            .filter(|r| match expiring_within {
                None => true,
                Some(d) => {
                    matches!(r.status, ClientStatus::Active | ClientStatus::Disabled)
                        && r.not_after <= now + d
                }
            })
            .collect();
        Ok(rows)
    }

    /// (Re-)issues the proxy's server certificate for each DNS name, keeping its key; an existing
    /// certificate is kept as `proxy-<name>.crt.<timestamp>.bak`. Returns the certificates written.
    pub fn issue_server(&self, dns: &[String]) -> Result<Vec<PathBuf>, CertError> {
        Self::issue_server_pki(&self.pki, dns)
    }

    /// [`CertAdmin::issue_server`] without a store (server certificates are not in the registry).
    pub fn issue_server_pki(pki: &Pki, dns: &[String]) -> Result<Vec<PathBuf>, CertError> {
        if dns.is_empty() {
            return Err(CertError::Invalid(
                "name at least one domain: --dns relay.example.com".into(),
            ));
        }
        let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
        for name in dns {
            let (crt, _) = pki.proxy_files(name);
            if crt.exists() {
                let backup = crt.with_extension(format!("crt.{stamp}.bak"));
                std::fs::rename(&crt, &backup).map_err(CertError::io("moving aside", &crt))?;
            }
        }
        let report = pki.init(dns)?;
        Ok(report
            .created
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect())
    }

    /// Registers a certificate signed elsewhere with the client CA (the OpenSSL scripts): checks that
    /// it chains to the client CA, is a clientAuth certificate for `client_id` and has not expired.
    pub async fn register_external(
        &self,
        client_id: &ClientId,
        cert_pem: &[u8],
    ) -> Result<CertRow, CertError> {
        let client = self.client(client_id).await?;
        let ca_pem = self.pki.read("client-ca.crt")?;
        let checked = external::check(cert_pem, &ca_pem, client_id)?;
        let cert = NewCertificate {
            serial_hex: checked.serial_hex.clone(),
            fingerprint: checked.fingerprint.clone(),
            client_id: client_id.clone(),
            not_after_ms: checked.not_after.timestamp_millis(),
        };
        self.store.add_certificate(&cert).await?;
        tracing::info!(client_id = %client_id, serial = %checked.serial_hex, "external client certificate registered");
        Ok(CertRow {
            client_id: client_id.clone(),
            serial_hex: checked.serial_hex,
            fingerprint: checked.fingerprint,
            domain: client.domain,
            not_after: checked.not_after,
            status: if client.active {
                ClientStatus::Active
            } else {
                ClientStatus::Disabled
            },
        })
    }
}

fn row(clients: &[Client], c: ClientCertificate, now: DateTime<Utc>) -> CertRow {
    let client = clients.iter().find(|cl| cl.client_id == c.client_id);
    let not_after = ms_to_utc(c.not_after_ms);
    let status = ClientStatus::of_certificate(
        c.revoked_at_ms.is_some(),
        c.not_after_ms,
        client.is_some_and(|cl| cl.active),
        now.timestamp_millis(),
    );
    CertRow {
        client_id: c.client_id,
        serial_hex: c.serial_hex,
        fingerprint: c.fingerprint,
        domain: client.map(|cl| cl.domain.clone()).unwrap_or_default(),
        not_after,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_have_one_spelling() {
        assert_eq!(normalize_serial("00:AB:cd").unwrap(), "abcd");
        assert_eq!(normalize_serial("0x0ABC").unwrap(), "0abc");
        assert_eq!(normalize_serial("00").unwrap(), "00");
        assert_eq!(normalize_serial("abc").unwrap(), "0abc");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
    }
}
