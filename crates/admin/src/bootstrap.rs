//! First run of a data directory (`msgrelay init`, and `msgrelay up` on first start): CAs and
//! service certificates, sealing and at-rest keys, the admin account and, on request, a demo
//! client with its bundle. Idempotent: it only ever creates what is missing, never overwrites.

use std::path::PathBuf;

use msgrelay_at_rest::AtRestKeys;
use msgrelay_core::{ClientId, Config, Role};
use msgrelay_sealing::SealingKeyPair;
use msgrelay_store::Store;
use msgrelay_tls::Pki;

use crate::secret::append_credentials;
use crate::AdminError;
use msgrelay_certs::{random_password, CertAdmin, KeyAlgorithm};

/// Where the generated portal passwords go, relative to the data directory.
pub const CREDENTIALS_FILE: &str = "bootstrap-credentials.txt";
const DEMO: &str = "demo";

/// What `init` should set up besides the essentials.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Proxy domains to provision in addition to `proxy.domains` (these come first).
    pub domains: Vec<String>,
    /// Also create the user and client `demo` with a certificate bundle in `clients/demo/`.
    pub demo: bool,
}

/// What `init` did. Holds no secrets: passwords are only in `credentials_file`.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Human-readable list of what was created (empty on a second run).
    pub created: Vec<String>,
    /// The owner-only file holding generated passwords.
    pub credentials_file: PathBuf,
    pub admin_created: bool,
    /// The demo client's bundle directory, if it was created by this run.
    pub demo_bundle: Option<PathBuf>,
}

/// Bootstraps `cfg.data_dir`; safe to run any number of times and while the relay runs.
pub async fn init(cfg: &Config, opts: &InitOptions) -> Result<InitReport, AdminError> {
    let mut domains: Vec<String> = Vec::new();
    for d in opts.domains.iter().chain(&cfg.proxy.domains) {
        let d = d.to_ascii_lowercase();
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    let mut created = Vec::new();
    if !cfg.data_dir.exists() {
        // Owner-only from the start (Windows: a protected DACL the keys below inherit; the
        // folder it would otherwise inherit from may grant Users read access).
        crate::maintenance::files::create_private_dir(&cfg.data_dir)?;
    }

    // Secrets written by this run; on Windows they get their explicit DACL at the end (the
    // writers below only set Unix modes). Existing files keep theirs: a service account's grant
    // must survive a second `init`.
    let mut secrets: Vec<PathBuf> = Vec::new();
    let bar = crate::progress::bar(4, "init: PKI");
    let pki = Pki::new(cfg.path("pki"));
    for p in pki.init(&domains)?.created {
        created.push(p.display().to_string());
        if p.extension().is_some_and(|e| e == "key") {
            secrets.push(p);
        }
    }
    bar.inc(1);
    bar.set_message("init: sealing keys");
    for key in ["keys/sealing.key", "keys/proxy-sealing.key"] {
        let path = cfg.path(key);
        if SealingKeyPair::create_if_missing(&path)? {
            created.push(path.display().to_string());
            secrets.push(path);
        }
    }
    bar.inc(1);
    bar.set_message("init: at-rest key");
    let at_rest = cfg.path("keys/at-rest.json");
    if AtRestKeys::create_if_missing(&at_rest)? {
        created.push(at_rest.display().to_string());
        secrets.push(at_rest);
    }
    bar.inc(1);
    bar.set_message("init: users and clients");

    let store = Store::connect(&cfg.database(), cfg.database.max_connections).await?;
    // Each password is recorded right after its account is created, so no account is ever unreachable.
    let credentials_file = cfg.path(CREDENTIALS_FILE);

    let has_admin = store
        .list_users()
        .await?
        .iter()
        .any(|u| u.role == Role::Admin);
    if !has_admin {
        let password = random_password(20);
        store.create_user("admin", &password, Role::Admin).await?;
        append_credentials(
            &credentials_file,
            &[("admin".to_owned(), "admin", password)],
        )?;
        created.push("portal user admin (role admin)".to_owned());
    }
    let admin_created = !has_admin;

    let mut demo_bundle = None;
    let certs = CertAdmin::new(pki, store.clone());
    if opts.demo {
        if store.get_user_by_name(DEMO).await?.is_none() {
            let password = random_password(20);
            store.create_user(DEMO, &password, Role::User).await?;
            append_credentials(&credentials_file, &[(DEMO.to_owned(), "user", password)])?;
            created.push("portal user demo (role user)".to_owned());
        }

        let client_id = ClientId::parse(DEMO).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let domain = domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".to_owned());
        if store.get_client(&client_id).await?.is_none() {
            store.create_client(&client_id, DEMO, &domain).await?;
            created.push(format!("client demo (owner demo, domain {domain})"));
        }
        let has_cert = !store.list_certificates(Some(&client_id)).await?.is_empty();
        let dir = cfg.path("clients").join(DEMO);
        if !has_cert && !dir.join("client.crt").exists() {
            let client = store.get_client(&client_id).await?.ok_or_else(|| {
                AdminError::NotFound(
                    "client demo vanished during init; run `msgrelay init --demo` again".into(),
                )
            })?;
            let bundle = certs
                .issue_client(
                    &client_id,
                    &client.domain,
                    msgrelay_tls::pki::DEFAULT_CLIENT_DAYS,
                    &dir,
                    KeyAlgorithm::EcdsaP256,
                    None,
                )
                .await?;
            created.push(format!(
                "certificate {} for client demo, bundle in {}",
                bundle.serial_hex,
                dir.display()
            ));
            demo_bundle = Some(dir);
        }
    }

    if let Some(info) = certs.refresh_crl_if_due().await? {
        created.push(format!(
            "client CRL ({} revoked, next update {})",
            info.revoked, info.next_update
        ));
    }
    store.close().await;
    if admin_created || demo_bundle.is_some() {
        secrets.push(credentials_file.clone());
    }
    if let Some(dir) = &demo_bundle {
        secrets.push(dir.clone());
        secrets.extend(
            std::fs::read_dir(dir)
                .map_err(AdminError::io("listing", dir))?
                .flatten()
                .map(|e| e.path()),
        );
    }
    if cfg!(windows) {
        for path in secrets.iter().filter(|p| p.exists()) {
            crate::maintenance::files::make_owner_only(path)?;
        }
    }
    bar.inc(1);
    bar.finish_and_clear();
    Ok(InitReport {
        created,
        credentials_file,
        admin_created,
        demo_bundle,
    })
}
