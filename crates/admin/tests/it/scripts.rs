//! The OpenSSL scripts in scripts/certs. The msgrelay binary is built by the CLI crate, so here the
//! script runs without it (it then prints the register command) and registration goes through
//! `CertAdmin::register_external`, which `msgrelay certs register` calls.

use std::path::PathBuf;
use std::process::Command;

use msgrelay_core::{ClientId, ClientStatus, Role};

use crate::support::{have_openssl, TestDir};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/certs")
        .join(name)
}

#[tokio::test]
async fn generate_register_revoke() {
    if !have_openssl() {
        return;
    }
    let t = TestDir::new();
    t.init(false).await;
    let certs = t.certs().await;
    let acme = ClientId::parse("acme").unwrap();
    certs
        .store()
        .create_user("alice", "alice-password-long", Role::User)
        .await
        .unwrap();
    certs
        .store()
        .create_client(&acme, "alice", "localhost")
        .await
        .unwrap();

    let out = t.dir.path().join("bundle");
    let o = Command::new("bash")
        .arg(script("generate_cert.sh"))
        .args([
            "--data-dir",
            t.cfg.data_dir.to_str().unwrap(),
            "--client-id",
            "acme",
            "--domain",
            "localhost",
            "--days",
            "30",
        ])
        .args(["--out", out.to_str().unwrap()])
        .env("PATH", "/usr/bin:/bin")
        .env_remove("MSGRELAY_BIN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("msgrelay certs register --client-id acme"),
        "{stdout}"
    );
    for f in ["client.crt", "client.key", "ca.crt"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(!out.join("client.csr").exists() && !out.join("client.ext").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(out.join("client.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let printed_serial = stdout
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap()
        .to_owned();
    let printed_fp = stdout
        .lines()
        .find_map(|l| l.split_once("Fingerprint=").map(|x| x.1))
        .unwrap()
        .replace(':', "")
        .to_lowercase();

    let row = certs
        .register_external(&acme, &std::fs::read(out.join("client.crt")).unwrap())
        .await
        .unwrap();
    assert_eq!(row.fingerprint, printed_fp);
    assert_eq!(row.status, ClientStatus::Active);
    let reg = certs.store().registry().await.unwrap();
    assert_eq!(
        (reg[0].fingerprint.as_str(), reg[0].status.as_str()),
        (printed_fp.as_str(), "active")
    );

    // Registered twice → conflict; for another client → refused (CN mismatch).
    assert!(certs
        .register_external(&acme, &std::fs::read(out.join("client.crt")).unwrap())
        .await
        .is_err());
    certs
        .store()
        .create_client(&ClientId::parse("other").unwrap(), "alice", "localhost")
        .await
        .unwrap();
    let e = certs
        .register_external(
            &ClientId::parse("other").unwrap(),
            &std::fs::read(out.join("client.crt")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("common name"), "{e}");
    // A certificate from another CA is refused.
    let e = certs
        .register_external(
            &acme,
            &std::fs::read(t.cfg.path("pki/proxy-localhost.crt")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not signed by the client CA"), "{e}");

    // The serial as openssl prints it (uppercase, possibly with a leading 00) revokes it.
    let info = certs
        .revoke_serial(&printed_serial, Some("keyCompromise"))
        .await
        .unwrap();
    assert_eq!(info.revoked, 1);
    assert_eq!(
        certs.store().registry().await.unwrap()[0].status,
        ClientStatus::Revoked
    );
    let crl = std::fs::read(t.cfg.path("pki/client-ca.crl")).unwrap();
    let ca = std::fs::read(t.cfg.path("pki/client-ca.crt")).unwrap();
    let loaded = msgrelay_tls::load_crl(&crl, &ca, std::time::Duration::ZERO).unwrap();
    let strip = |s: &str| s.trim_start_matches("00").to_owned();
    assert_eq!(
        loaded
            .revoked_serials
            .iter()
            .map(|s| strip(s))
            .collect::<Vec<_>>(),
        vec![strip(&printed_serial.to_lowercase())]
    );
    // openssl agrees that the certificate is revoked by this CRL.
    let o = Command::new("openssl")
        .args([
            "verify",
            "-crl_check",
            "-CAfile",
            t.cfg.path("pki/client-ca.crt").to_str().unwrap(),
        ])
        .args([
            "-CRLfile",
            t.cfg.path("pki/client-ca.crl").to_str().unwrap(),
            out.join("client.crt").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success() && said.contains("revoked"), "{said}");
}

#[test]
fn scripts_refuse_bad_input_and_missing_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = Command::new("bash")
        .arg(script("generate_cert.sh"))
        .args([
            "--data-dir",
            d,
            "--client-id",
            "a/b",
            "--domain",
            "localhost",
            "--out",
            d,
        ])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--client-id"));
    let o = Command::new("bash")
        .arg(script("generate_cert.sh"))
        .args([
            "--data-dir",
            d,
            "--client-id",
            "acme",
            "--domain",
            "localhost",
            "--out",
            d,
        ])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("msgrelay init"));
    let o = Command::new("bash")
        .arg(script("revoke_cert.sh"))
        .args(["--data-dir", d, "--serial", "01"])
        .env("PATH", "/usr/bin:/bin")
        .env_remove("MSGRELAY_BIN")
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("MSGRELAY_BIN"));
}
