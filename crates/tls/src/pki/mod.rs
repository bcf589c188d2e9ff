//! The PKI on disk: two CAs (clients / internal services), service certificates, client
//! certificates and the client CA's CRL. Keys are ECDSA P-256, owner-only, never overwritten.

mod crl;
mod fsutil;
mod internal_crl;
mod issue;
mod pem;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rcgen::{Issuer, KeyPair, KeyUsagePurpose};

pub use crl::{load_crl, LoadedCrl, RevokedCert};
pub use internal_crl::{INTERNAL_CRL_FILE, REVOCABLE_SERVICES};
pub(crate) use pem::common_name_and_serial;
pub use pem::{fingerprint, load_certs_pem, load_key_pem};

use crate::PkiError;
use issue::{check_domain, leaf_params, load_ca, new_key, window, Usage, SERVICE_DAYS};

/// File stem of the CA that signs client certificates and the CRL.
pub const CLIENT_CA: &str = "client-ca";
/// File stem of the CA that signs every service certificate.
pub const INTERNAL_CA: &str = "internal-ca";
/// The client CA's current CRL (PEM).
pub const CRL_FILE: &str = "client-ca.crl";
/// The last CRL number issued.
pub const CRL_NUMBER_FILE: &str = "crl-number";
/// File stem of the offline root CA above the client CA (see [`Pki::init_client_ca_under_offline_root`]).
pub const CLIENT_ROOT_CA: &str = "client-root-ca";
/// Lifetime of an offline root CA.
pub const ROOT_CA_DAYS: i64 = 20 * 365;
/// Lifetime of an issuing client CA signed by an offline root.
pub const ISSUING_CA_DAYS: i64 = 5 * 365;
/// Validity of the empty CRL written by `init`; whoever revokes writes a new one anyway.
pub const INITIAL_CRL_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default lifetime of a client certificate (the CA/Browser maximum that clients tolerate).
pub const DEFAULT_CLIENT_DAYS: u32 = 825;

/// SANs of the certificates that local services (main server, portal) present.
const LOCAL_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Handle on a PKI directory (normally `<data_dir>/pki`); cheap, holds only the path.
#[derive(Clone, Debug)]
pub struct Pki {
    dir: PathBuf,
}

/// Files created by [`Pki::init`].
#[derive(Clone, Debug, Default)]
pub struct InitReport {
    /// Paths written by this call (empty when everything already existed).
    pub created: Vec<PathBuf>,
}

/// A freshly issued certificate and its key (the key is only ever held in memory and in the bundle).
#[derive(Clone)]
pub struct IssuedCert {
    /// Serial, lowercase hex without separators.
    pub serial_hex: String,
    /// SHA-256 fingerprint of the DER certificate (see [`fingerprint`]).
    pub fingerprint: String,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    // The key must never end up in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial_hex", &self.serial_hex)
            .field("fingerprint", &self.fingerprint)
            .field("not_after", &self.not_after)
            .field("key_pem", &"***")
            .finish_non_exhaustive()
    }
}

/// One service identity that `init` provisions.
struct ServiceSpec {
    stem: String,
    cn: String,
    sans: Vec<String>,
    usage: Usage,
}

impl Pki {
    /// A handle on `pki_dir`; nothing is read or created until a method needs it.
    pub fn new(pki_dir: impl Into<PathBuf>) -> Self {
        Pki {
            dir: pki_dir.into(),
        }
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `dir.join(file)`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Certificate and key paths of the proxy's server certificate for `domain`.
    pub fn proxy_files(&self, domain: &str) -> (PathBuf, PathBuf) {
        (
            self.path(&format!("proxy-{domain}.crt")),
            self.path(&format!("proxy-{domain}.key")),
        )
    }

    /// Idempotent: creates the CAs and any missing service certificate (one proxy certificate per
    /// domain), then an initial empty CRL if none exists; reports which files it created.
    pub fn init(&self, domains: &[String]) -> Result<InitReport, PkiError> {
        for d in domains {
            check_domain(d)?;
        }
        fsutil::create_dir(&self.dir)?;
        let mut report = InitReport::default();
        self.ensure_ca(CLIENT_CA, "msgrelay client CA", &mut report)?;
        self.ensure_ca(INTERNAL_CA, "msgrelay internal CA", &mut report)?;

        let local: Vec<String> = LOCAL_SANS.iter().map(|s| s.to_string()).collect();
        let mut specs: Vec<ServiceSpec> = domains
            .iter()
            .map(|d| ServiceSpec {
                stem: format!("proxy-{d}"),
                cn: d.clone(),
                sans: vec![d.clone()],
                usage: Usage::Server,
            })
            .collect();
        specs.push(ServiceSpec {
            stem: "proxy".into(),
            cn: "msgrelay-proxy".into(),
            sans: vec![],
            usage: Usage::Client,
        });
        specs.push(ServiceSpec {
            stem: "worker".into(),
            cn: "msgrelay-worker".into(),
            sans: vec![],
            usage: Usage::Client,
        });
        specs.push(ServiceSpec {
            stem: "server".into(),
            cn: "msgrelay-server".into(),
            sans: local.clone(),
            usage: Usage::Server,
        });
        specs.push(ServiceSpec {
            stem: "portal".into(),
            cn: "msgrelay-portal".into(),
            sans: local,
            usage: Usage::Server,
        });

        // Load the internal CA only if something needs signing, so a no-op init reads no key.
        let mut internal = None;
        for spec in &specs {
            let crt = self.path(&format!("{}.crt", spec.stem));
            let key = self.path(&format!("{}.key", spec.stem));
            if crt.exists() && key.exists() {
                continue;
            }
            if internal.is_none() {
                internal = Some(load_ca(&self.dir, INTERNAL_CA)?);
            }
            let ca = internal.as_ref().ok_or_else(|| PkiError::MissingKey {
                path: self.path("internal-ca.key"),
            })?;
            let key_pair = self.ensure_key(&key, &mut report)?;
            let sans: Vec<&str> = spec.sans.iter().map(String::as_str).collect();
            let (nb, na) = window(SERVICE_DAYS);
            let (params, _) = leaf_params(&spec.cn, None, &sans, spec.usage, nb, na)?;
            let cert = params
                .signed_by(&key_pair, &ca.issuer)
                .map_err(|e| PkiError::generate(format!("certificate {}", crt.display()), e))?;
            // A certificate without its key is useless, so replacing one is safe.
            fsutil::write_replace(&crt, cert.pem().as_bytes(), false)?;
            report.created.push(crt);
        }

        let crl = self.path(CRL_FILE);
        if !crl.exists() {
            let number = self.path(CRL_NUMBER_FILE);
            let new_number = !number.exists();
            self.write_crl(&[], INITIAL_CRL_VALIDITY)?;
            report.created.push(crl);
            if new_number {
                report.created.push(number);
            }
        }
        Ok(report)
    }

    /// Sets up the client CA as an *issuing* CA under a root CA whose key never enters the PKI
    /// directory: `root_dir` (created owner-only) receives `client-root-ca.crt` and
    /// `client-root-ca.key` (20 years), the PKI directory receives `client-ca.crt`/`.key`
    /// (5 years, CA:TRUE pathlen 0, keyCertSign + cRLSign, signed by the root) and a public copy
    /// of the root certificate, `client-root-ca.crt`.
    ///
    /// Everything else is unchanged: the proxy trusts `client-ca.crt`, and client certificates
    /// and the CRL are signed online with `client-ca.key`, so the root key can go offline right
    /// away. Refuses if the client CA already exists. Run [`Pki::init`] afterwards for the rest.
    pub fn init_client_ca_under_offline_root(
        &self,
        root_dir: &Path,
    ) -> Result<InitReport, PkiError> {
        let ca_crt = self.path(&format!("{CLIENT_CA}.crt"));
        let ca_key = self.path(&format!("{CLIENT_CA}.key"));
        let root_crt = root_dir.join(format!("{CLIENT_ROOT_CA}.crt"));
        let root_key = root_dir.join(format!("{CLIENT_ROOT_CA}.key"));
        let root_copy = self.path(&format!("{CLIENT_ROOT_CA}.crt"));
        if ca_key.exists() || ca_crt.exists() {
            return Err(PkiError::Invalid {
                what: "offline root setup",
                detail: format!(
                    "the client CA already exists ({}); an offline root can only be set up before the \
                     client CA is created (before `msgrelay init` / `certs init-ca`). Keep using the \
                     existing client CA, or start with a new data directory",
                    if ca_key.exists() { &ca_key } else { &ca_crt }.display()
                ),
            });
        }
        // Check every target first, so a refusal leaves nothing half-created.
        for p in [&root_crt, &root_key, &root_copy] {
            if p.exists() {
                return Err(PkiError::AlreadyExists { path: p.clone() });
            }
        }
        fsutil::create_dir(root_dir)?;
        fsutil::create_dir(&self.dir)?;
        let mut report = InitReport::default();

        let root_kp = new_key()?;
        // Path length 1: the root signs the issuing CA, which signs leaves only.
        let root_params = issue::ca_params_with(
            "msgrelay client root CA",
            ROOT_CA_DAYS,
            1,
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        )?;
        let root_cert = root_params
            .self_signed(&root_kp)
            .map_err(|e| PkiError::generate(format!("CA certificate {}", root_crt.display()), e))?;
        fsutil::write_new(&root_key, root_kp.serialize_pem().as_bytes(), true)?;
        report.created.push(root_key);
        fsutil::write_new(&root_crt, root_cert.pem().as_bytes(), false)?;
        report.created.push(root_crt);

        let ca_kp = new_key()?;
        let mut ca_params = issue::ca_params_with(
            "msgrelay client CA",
            ISSUING_CA_DAYS,
            0,
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        )?;
        ca_params.use_authority_key_identifier_extension = true;
        let root_issuer = Issuer::from_params(&root_params, &root_kp);
        let ca_cert = ca_params
            .signed_by(&ca_kp, &root_issuer)
            .map_err(|e| PkiError::generate(format!("CA certificate {}", ca_crt.display()), e))?;
        fsutil::write_new(&ca_key, ca_kp.serialize_pem().as_bytes(), true)?;
        report.created.push(ca_key);
        fsutil::write_new(&ca_crt, ca_cert.pem().as_bytes(), false)?;
        report.created.push(ca_crt);
        fsutil::write_new(&root_copy, root_cert.pem().as_bytes(), false)?;
        report.created.push(root_copy);
        Ok(report)
    }

    /// Creates `<stem>.key` and a self-signed `<stem>.crt` unless present. An existing key
    /// without certificate gets a new certificate; a certificate without key is an error
    /// (silently replacing a CA would invalidate everything it signed).
    fn ensure_ca(&self, stem: &str, cn: &str, report: &mut InitReport) -> Result<(), PkiError> {
        let crt = self.path(&format!("{stem}.crt"));
        let key = self.path(&format!("{stem}.key"));
        match (crt.exists(), key.exists()) {
            (true, true) => return Ok(()),
            (true, false) => return Err(PkiError::MissingKey { path: key }),
            _ => {}
        }
        let key_pair = self.ensure_key(&key, report)?;
        let cert = issue::ca_params(cn)?
            .self_signed(&key_pair)
            .map_err(|e| PkiError::generate(format!("CA certificate {}", crt.display()), e))?;
        fsutil::write_new(&crt, cert.pem().as_bytes(), false)?;
        report.created.push(crt);
        Ok(())
    }

    /// Loads the key at `path`, or generates and writes (0600, no overwrite) a new one.
    /// Re-issues the main server's certificate (`server.crt`, keeping `server.key`) for
    /// `localhost`, the loopback addresses and `names` (DNS names or IP addresses), so that
    /// proxies and workers on other hosts can reach main servers by those names. Returns the path
    /// written; the server must be restarted to present it.
    pub fn issue_main_server(&self, names: &[String]) -> Result<PathBuf, PkiError> {
        let mut sans: Vec<&str> = LOCAL_SANS.to_vec();
        for name in names {
            if name.parse::<std::net::IpAddr>().is_err() {
                check_domain(name)?;
            }
            if !sans.contains(&name.as_str()) {
                sans.push(name);
            }
        }
        let ca = load_ca(&self.dir, INTERNAL_CA)?;
        let crt = self.path("server.crt");
        let key_pair = self.ensure_key(&self.path("server.key"), &mut InitReport::default())?;
        let (nb, na) = window(SERVICE_DAYS);
        let (params, _) = leaf_params("msgrelay-server", None, &sans, Usage::Server, nb, na)?;
        let cert = params
            .signed_by(&key_pair, &ca.issuer)
            .map_err(|e| PkiError::generate(format!("certificate {}", crt.display()), e))?;
        fsutil::write_replace(&crt, cert.pem().as_bytes(), false)?;
        Ok(crt)
    }

    fn ensure_key(&self, path: &Path, report: &mut InitReport) -> Result<KeyPair, PkiError> {
        if path.exists() {
            let pem = String::from_utf8(fsutil::read(path)?)
                .map_err(|e| PkiError::malformed(format!("key in {}", path.display()), e))?;
            return KeyPair::from_pem(&pem)
                .map_err(|e| PkiError::malformed(format!("key in {}", path.display()), e));
        }
        let key_pair = new_key()?;
        fsutil::write_new(path, key_pair.serialize_pem().as_bytes(), true)?;
        report.created.push(path.to_path_buf());
        Ok(key_pair)
    }

    /// Issues a client certificate (CN = client_id, domain as OU and as a SAN DNS name),
    /// clientAuth EKU, signed by the client CA, valid for `days`.
    pub fn issue_client(
        &self,
        client_id: &str,
        domain: &str,
        days: u32,
    ) -> Result<IssuedCert, PkiError> {
        if days == 0 {
            return Err(PkiError::Invalid {
                what: "days",
                detail: "a certificate must be valid at least one day".into(),
            });
        }
        let (nb, na) = window(i64::from(days));
        self.issue_client_with_validity(client_id, domain, nb, na)
    }

    /// Like [`Pki::issue_client`] with an explicit validity window (tests issue expired certificates with it).
    #[doc(hidden)]
    pub fn issue_client_with_validity(
        &self,
        client_id: &str,
        domain: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedCert, PkiError> {
        if client_id.trim().is_empty() || client_id.len() > 64 {
            return Err(PkiError::Invalid {
                what: "client id",
                detail: "must be 1 to 64 characters".into(),
            });
        }
        check_domain(domain)?;
        let ca = load_ca(&self.dir, CLIENT_CA)?;
        let key_pair = new_key()?;
        let (params, serial_hex) = leaf_params(
            client_id,
            Some(domain),
            &[domain],
            Usage::Client,
            not_before,
            not_after,
        )?;
        let cert = params
            .signed_by(&key_pair, &ca.issuer)
            .map_err(|e| PkiError::generate(format!("client certificate for {client_id}"), e))?;
        Ok(IssuedCert {
            serial_hex,
            fingerprint: fingerprint(cert.der()),
            not_after: issue::from_unix(params.not_after.unix_timestamp()),
            cert_pem: cert.pem(),
            key_pem: key_pair.serialize_pem(),
        })
    }

    /// Writes `client.crt`, `client.key` (0600) and `ca.crt` (the internal CA, which signed the
    /// proxy's server certificate) into `out_dir`, creating it. Refuses to overwrite a `client.key`.
    pub fn write_client_bundle(&self, issued: &IssuedCert, out_dir: &Path) -> Result<(), PkiError> {
        let key = out_dir.join("client.key");
        if key.exists() {
            return Err(PkiError::AlreadyExists { path: key });
        }
        let ca = fsutil::read(&self.path("internal-ca.crt"))?;
        fsutil::create_dir(out_dir)?;
        fsutil::write_new(&key, issued.key_pem.as_bytes(), true)?;
        fsutil::write_replace(
            &out_dir.join("client.crt"),
            issued.cert_pem.as_bytes(),
            false,
        )?;
        fsutil::write_replace(&out_dir.join("ca.crt"), &ca, false)?;
        Ok(())
    }

    /// Reads a file of the PKI directory, naming it in the error.
    pub fn read(&self, file: &str) -> Result<Vec<u8>, PkiError> {
        fsutil::read(&self.path(file))
    }

    /// Loads `<name>.crt` and `<name>.key` (e.g. "server", "proxy-localhost") for a rustls config.
    pub fn load_identity(
        &self,
        name: &str,
    ) -> Result<
        (
            Vec<rustls_pki_types::CertificateDer<'static>>,
            rustls_pki_types::PrivateKeyDer<'static>,
        ),
        PkiError,
    > {
        let crt = format!("{name}.crt");
        let key = format!("{name}.key");
        let certs =
            load_certs_pem(&self.read(&crt)?).map_err(|e| with_path(e, &self.path(&crt)))?;
        let key_der =
            load_key_pem(&self.read(&key)?).map_err(|e| with_path(e, &self.path(&key)))?;
        Ok((certs, key_der))
    }
}

/// Adds the file name to a parse error so the operator knows which file is broken.
pub(crate) fn with_path(e: PkiError, path: &Path) -> PkiError {
    match e {
        PkiError::Malformed { what, detail } => PkiError::Malformed {
            what: format!("{what} in {}", path.display()),
            detail,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
