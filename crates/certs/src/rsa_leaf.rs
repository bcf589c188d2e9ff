//! RSA client certificates. ring (our rcgen backend) can sign with RSA but not generate RSA keys,
//! so the key comes from the RustCrypto `rsa` crate; the certificate profile mirrors
//! `msgrelay_tls::Pki::issue_client` (O=msgrelay, OU=domain, CN=client id, SAN=domain, clientAuth).

use chrono::{DateTime, Utc};
use msgrelay_core::ClientId;
use msgrelay_tls::{IssuedCert, Pki};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use crate::CertError;

fn pem_err(what: &str, e: impl std::fmt::Display) -> CertError {
    CertError::Invalid(format!("{what}: {e}"))
}

fn to_time(dt: DateTime<Utc>) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(dt.timestamp()).map_err(|e| pem_err("date", e))
}

/// Issues an RSA (`bits`) client certificate signed by the client CA.
pub(crate) async fn issue(
    pki: &Pki,
    client_id: &ClientId,
    domain: &str,
    days: u32,
    bits: usize,
) -> Result<IssuedCert, CertError> {
    if days == 0 {
        return Err(CertError::Invalid("--days must be at least 1".into()));
    }
    // Generating a 3072-bit key takes a noticeable moment; keep it off the async threads.
    let key_pem = tokio::task::spawn_blocking(move || {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
            .map_err(|e| pem_err("generating the RSA key", e))?;
        key.to_pkcs8_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(|e| pem_err("encoding the RSA key", e))
    })
    .await
    .map_err(|e| pem_err("RSA key generation task", e))??;
    let key = KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| pem_err("loading the RSA key", e))?;

    let ca_cert =
        String::from_utf8(pki.read("client-ca.crt")?).map_err(|e| pem_err("client-ca.crt", e))?;
    let ca_key =
        String::from_utf8(pki.read("client-ca.key")?).map_err(|e| pem_err("client-ca.key", e))?;
    let ca_key = KeyPair::from_pem(&ca_key).map_err(|e| pem_err("client-ca.key", e))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(|e| pem_err("client-ca.crt", e))?;

    let mut params =
        CertificateParams::new(vec![domain.to_owned()]).map_err(|e| pem_err("domain", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "msgrelay");
    dn.push(DnType::OrganizationalUnitName, domain);
    dn.push(DnType::CommonName, client_id.as_str());
    params.distinguished_name = dn;
    // Same serial rule as the tls crate: 16 random bytes, top bit clear (positive), next bit set (fixed length).
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = Utc::now();
    let not_after = now + chrono::Duration::days(i64::from(days));
    params.not_before = to_time(now - chrono::Duration::minutes(5))?;
    params.not_after = to_time(not_after)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| pem_err("signing the RSA client certificate", e))?;
    Ok(IssuedCert {
        serial_hex: hex::encode(serial),
        fingerprint: msgrelay_tls::fingerprint(cert.der()),
        not_after: DateTime::from_timestamp(not_after.timestamp(), 0).unwrap_or(not_after),
        cert_pem: cert.pem(),
        key_pem,
    })
}
