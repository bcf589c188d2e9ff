//! Per-test data directories.

use msgrelay_admin::{init, CertAdmin, InitOptions, InitReport};
use msgrelay_core::Config;
use msgrelay_store::Store;
use msgrelay_tls::Pki;

/// A bootstrapped data directory, removed on drop.
pub struct TestDir {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
}

impl TestDir {
    pub fn new() -> Self {
        msgrelay_tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        TestDir { dir, cfg }
    }

    pub async fn init(&self, demo: bool) -> InitReport {
        init(
            &self.cfg,
            &InitOptions {
                domains: vec![],
                demo,
            },
        )
        .await
        .expect("init")
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.cfg.database(), 2)
            .await
            .expect("store")
    }

    pub async fn certs(&self) -> CertAdmin {
        CertAdmin::new(Pki::new(self.cfg.path("pki")), self.store().await)
    }
}

/// Whether the `openssl` command line is available (tests that need it are skipped otherwise).
pub fn have_openssl() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: openssl not found");
    }
    ok
}
