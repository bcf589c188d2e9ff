//! A client's certificate bundle on disk: `client.crt`, `client.key`, `ca.crt`, and `client.p12`
//! (password-protected, for the Windows certificate store and other PKCS#12 consumers).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use msgrelay_core::ClientId;
use msgrelay_tls::{IssuedCert, Pki};
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKeyChain};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::CertError;

/// File names inside a bundle directory.
pub(crate) const BUNDLE_FILES: [&str; 5] = [
    "client.crt",
    "client.key",
    "ca.crt",
    "client.p12",
    "client.p12.pass",
];

/// What `issue_client` / `renew` produced. Never holds the private key or the PKCS#12 password.
#[derive(Debug, Clone)]
pub struct IssuedBundle {
    pub client_id: ClientId,
    pub domain: String,
    /// Serial, lowercase hex.
    pub serial_hex: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    pub not_after: DateTime<Utc>,
    /// The bundle directory.
    pub dir: PathBuf,
    /// Every file written, in the order written.
    pub files: Vec<PathBuf>,
    /// `client.p12.pass`, when the PKCS#12 password was generated.
    pub p12_password_file: Option<PathBuf>,
}

/// Writes the PEM files and the PKCS#12 file for `issued` into `out_dir`.
/// Refuses to touch a directory that already holds a `client.key` or `client.p12`.
pub(crate) fn write_bundle(
    pki: &Pki,
    client_id: &ClientId,
    domain: &str,
    issued: &IssuedCert,
    out_dir: &Path,
    p12_password: Option<String>,
) -> Result<IssuedBundle, CertError> {
    for f in ["client.key", "client.p12", "client.p12.pass"] {
        let p = out_dir.join(f);
        if p.exists() {
            return Err(CertError::Invalid(format!(
                "{} already exists; choose another --out directory or move the old bundle away \
                 (its certificate stays valid until you revoke it)",
                p.display()
            )));
        }
    }
    let p12 = build_p12(
        pki,
        client_id,
        issued,
        p12_password.as_deref().unwrap_or(""),
        p12_password.is_none(),
    )?;
    pki.write_client_bundle(issued, out_dir)?;
    let mut files: Vec<PathBuf> = ["client.crt", "client.key", "ca.crt"]
        .iter()
        .map(|f| out_dir.join(f))
        .collect();
    let (der, password) = p12;
    let p12_path = out_dir.join("client.p12");
    write_new_secret(&p12_path, &der)?;
    files.push(p12_path);
    let mut p12_password_file = None;
    if let Some(password) = password {
        let pass_path = out_dir.join("client.p12.pass");
        write_new_secret(&pass_path, format!("{password}\n").as_bytes())?;
        files.push(pass_path.clone());
        p12_password_file = Some(pass_path);
    }
    Ok(IssuedBundle {
        client_id: client_id.clone(),
        domain: domain.to_owned(),
        serial_hex: issued.serial_hex.clone(),
        fingerprint: issued.fingerprint.clone(),
        not_after: issued.not_after,
        dir: out_dir.to_path_buf(),
        files,
        p12_password_file,
    })
}

/// Removes the files of a bundle written by [`write_bundle`] (used when registration fails).
pub(crate) fn remove_bundle(out_dir: &Path) {
    for f in BUNDLE_FILES {
        let _ = std::fs::remove_file(out_dir.join(f));
    }
}

/// The PKCS#12 (PBES2 AES-256, HMAC-SHA256 MAC) holding the key, the certificate and the client CA.
/// Returns the DER and, when `generate` is set, the generated password.
fn build_p12(
    pki: &Pki,
    client_id: &ClientId,
    issued: &IssuedCert,
    password: &str,
    generate: bool,
) -> Result<(Vec<u8>, Option<String>), CertError> {
    let p12_err = |e: p12_keystore::error::Error| CertError::Pkcs12(e.to_string());
    let key = PrivatePkcs8KeyDer::from_pem_slice(issued.key_pem.as_bytes())
        .map_err(|e| CertError::Pkcs12(format!("private key is not PKCS#8 PEM: {e}")))?;
    let leaf = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())
        .map_err(|e| CertError::Pkcs12(format!("certificate PEM: {e}")))?;
    let ca = CertificateDer::from_pem_slice(&pki.read("client-ca.crt")?)
        .map_err(|e| CertError::Pkcs12(format!("client CA PEM: {e}")))?;
    let chain = vec![
        Certificate::from_der(&leaf).map_err(p12_err)?,
        Certificate::from_der(&ca).map_err(p12_err)?,
    ];
    // localKeyId ties the key to its certificate; the certificate fingerprint is a stable choice.
    let key_id = hex::decode(&issued.fingerprint).unwrap_or_default();
    let mut store = KeyStore::new();
    store.add_entry(
        client_id.as_str(),
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            key.secret_pkcs8_der(),
            &key_id[..20.min(key_id.len())],
            chain,
        )),
    );
    let generated = generate.then(|| random_password(24));
    let password = generated.as_deref().unwrap_or(password);
    if password.is_empty() {
        return Err(CertError::Invalid(
            "the PKCS#12 password must not be empty".into(),
        ));
    }
    let der = store.writer(password).write().map_err(p12_err)?;
    Ok((der, generated))
}

/// A random password of `len` letters and digits from the OS generator (20 chars ≈ 119 bits).
pub fn random_password(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, len)
}

/// Writes a secret file that must not exist yet (owner-only, durable).
fn write_new_secret(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    if !msgrelay_files::write_new_secret(path, contents)? {
        return Err(CertError::Invalid(format!(
            "{} already exists; move it away (or choose another --out directory) and run the command again",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
#[test]
fn passwords_are_random_alphanumeric() {
    let a = random_password(20);
    assert_eq!(a.len(), 20);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, random_password(20));
}
