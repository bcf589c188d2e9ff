use clap::Parser;
use msgrelay_admin::cli::Io;
use msgrelay_admin::{run_admin_with, run_certs_with, AdminCommand, CertsCommand};
use msgrelay_core::Config;

use crate::support::TestDir;

#[derive(Parser)]
enum Top {
    #[command(subcommand)]
    Certs(CertsCommand),
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Parses `args` like the binary would and runs them with `stdin`; returns stdout or the error text.
async fn run(cfg: &Config, args: &str, stdin: &str) -> Result<String, String> {
    let top = Top::try_parse_from(std::iter::once("msgrelay").chain(args.split_whitespace()))
        .map_err(|e| e.to_string())?;
    let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
    let mut output = Vec::new();
    let io = Io {
        input: &mut input,
        output: &mut output,
        interactive: false,
    };
    let r = match top {
        Top::Certs(c) => run_certs_with(c, cfg, io).await,
        Top::Admin(c) => run_admin_with(c, cfg, io).await,
    };
    r.map(|()| String::from_utf8(output).unwrap())
        .map_err(|e| format!("{e:#}"))
}

#[tokio::test]
async fn operator_flow_through_the_command_line() {
    let t = TestDir::new();
    t.init(false).await;
    let cfg = &t.cfg;

    let e = run(cfg, "admin user create --username alice --role user", "")
        .await
        .unwrap_err();
    assert!(
        e.contains("printf '%s\\n' 'long-password' | msgrelay admin user create"),
        "{e}"
    );
    run(
        cfg,
        "admin user create --username alice --role user",
        "alice-secret-password\n",
    )
    .await
    .unwrap();
    assert!(
        run(cfg, "admin user create --username bob --role boss", "x")
            .await
            .unwrap_err()
            .contains("'user' or 'admin'")
    );
    t.store()
        .await
        .verify_login("alice", "alice-secret-password")
        .await
        .unwrap();
    let users = run(cfg, "admin user list", "").await.unwrap();
    assert!(
        users.starts_with("USERNAME") && users.contains("alice") && users.contains("admin"),
        "{users}"
    );

    let e = run(
        cfg,
        "certs issue-client --client-id acme --domain localhost",
        "",
    )
    .await
    .unwrap_err();
    assert!(e.contains("admin client create"), "{e}");
    let out = run(
        cfg,
        "admin client create --client-id acme --owner alice --domain localhost",
        "",
    )
    .await
    .unwrap();
    assert!(out.contains("certs issue-client --client-id acme"), "{out}");
    let out = run(
        cfg,
        "certs issue-client --client-id acme --domain localhost --days 10",
        "",
    )
    .await
    .unwrap();
    assert!(
        out.contains("fingerprint") && out.contains("client.p12.pass"),
        "{out}"
    );
    assert!(cfg.path("clients/acme/client.p12").is_file());
    let list = run(cfg, "certs list --expiring-within 30d", "")
        .await
        .unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    let serial = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        run(cfg, "certs list --expiring-within 5d", "")
            .await
            .unwrap()
            .lines()
            .count()
            == 1
    );
    let e = run(cfg, "certs list --expiring-within 5x", "")
        .await
        .unwrap_err();
    assert!(
        e.contains("'--expiring-within <EXPIRING_WITHIN>'")
            && e.contains("e.g. --expiring-within 30d"),
        "{e}"
    );
    assert_eq!(
        run(cfg, "certs list --expiring-within 365d", "")
            .await
            .unwrap()
            .lines()
            .count(),
        2
    );

    let out = run(
        cfg,
        "certs renew --client-id acme --p12-password-stdin",
        "p12-password-here\n",
    )
    .await
    .unwrap();
    assert!(!out.contains("client.p12.pass"), "{out}");
    assert!(run(cfg, "certs revoke --serial 01 --client-id acme", "")
        .await
        .is_err());
    let out = run(
        cfg,
        &format!("certs revoke --serial {serial} --reason keyCompromise"),
        "",
    )
    .await
    .unwrap();
    assert!(out.contains("1 revoked"), "{out}");
    assert!(run(cfg, "certs revoke --client-id acme --reason lost", "")
        .await
        .unwrap_err()
        .contains("keyCompromise"));
    let out = run(cfg, "certs crl", "").await.unwrap();
    assert!(out.contains("client-ca.crl: 1 revoked"), "{out}");

    run(cfg, "admin client disable --client-id acme", "")
        .await
        .unwrap();
    assert!(run(cfg, "admin client list", "")
        .await
        .unwrap()
        .contains("disabled"));
    run(cfg, "admin client enable --client-id acme", "")
        .await
        .unwrap();

    let out = run(cfg, "admin token create --username alice", "")
        .await
        .unwrap();
    let token = out.lines().nth(1).unwrap().to_owned();
    assert!(token.starts_with("mrt_"));
    assert_eq!(
        t.store()
            .await
            .authenticate_api_token(&token)
            .await
            .unwrap()
            .unwrap()
            .username,
        "alice"
    );
    assert!(out.contains("scope read"), "{out}");
    let list = run(cfg, "admin token list --username alice", "")
        .await
        .unwrap();
    assert!(list.contains("cli") && !list.contains(&token), "{list}");
    assert!(
        list.contains("SCOPE") && list.contains("EXPIRES") && list.contains(" read "),
        "{list}"
    );
    // Scope and lifetime per token; admin tokens only for administrators.
    let err = run(cfg, "admin token create --username alice --scope admin", "")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("scope"), "{err}");
    assert!(run(cfg, "admin token create --username alice --days 0", "")
        .await
        .is_err());
    let out = run(
        cfg,
        "admin token create --username alice --name short --days 2",
        "",
    )
    .await
    .unwrap();
    let short = out.lines().nth(1).unwrap().to_owned();
    let listed = t.store().await.list_api_tokens(None).await.unwrap();
    let days = listed
        .iter()
        .find(|x| x.name == "short")
        .map(|x| (x.expires_at_ms - x.created_at_ms) / 86_400_000);
    assert_eq!(days, Some(2));
    assert!(t
        .store()
        .await
        .authenticate_api_token(&short)
        .await
        .unwrap()
        .is_some());
    run(cfg, "admin token revoke --id 1", "").await.unwrap();
    assert!(t
        .store()
        .await
        .authenticate_api_token(&token)
        .await
        .unwrap()
        .is_none());

    run(
        cfg,
        "admin user reset-password --username alice",
        "another-long-password\n",
    )
    .await
    .unwrap();
    t.store()
        .await
        .verify_login("alice", "another-long-password")
        .await
        .unwrap();
    run(cfg, "admin user disable --username alice", "")
        .await
        .unwrap();
    assert!(t
        .store()
        .await
        .verify_login("alice", "another-long-password")
        .await
        .is_err());

    let out = run(cfg, "admin messages retry --all-failed", "")
        .await
        .unwrap();
    assert!(out.starts_with("0 message(s)"), "{out}");
    let e = run(cfg, "admin messages retry --id not-a-uuid", "")
        .await
        .unwrap_err();
    assert!(e.contains("UUID"), "{e}");

    let out = run(cfg, "certs issue-server --dns relay.example.com", "")
        .await
        .unwrap();
    assert!(out.contains("proxy-relay.example.com.crt"), "{out}");
}

#[tokio::test]
async fn init_ca_with_offline_root() {
    use msgrelay_core::{ClientId, Role};
    use std::time::Duration;

    let t = TestDir::new();
    let cfg = &t.cfg;
    let offline = tempfile::tempdir().unwrap();
    let root_dir = offline.path().join("root");
    let out = run(
        cfg,
        &format!("certs init-ca --offline-root {}", root_dir.display()),
        "",
    )
    .await
    .unwrap();
    assert!(
        out.contains("move") && out.contains("offline storage"),
        "{out}"
    );
    let root_key = root_dir.join("client-root-ca.key");
    let root_crt = root_dir.join("client-root-ca.crt");
    assert!(root_key.exists() && root_crt.exists());
    assert!(!root_key.starts_with(&cfg.data_dir));
    assert!(
        cfg.path("pki/client-root-ca.crt").exists() && cfg.path("pki/internal-ca.key").exists()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root_dir), 0o700);
        assert_eq!(mode(&root_key), 0o600);
        assert_eq!(mode(&cfg.path("pki/client-ca.key")), 0o600);
    }
    // No root key anywhere in the data directory.
    let leaked: Vec<_> = walk(&cfg.data_dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "client-root-ca.key"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");

    // `msgrelay init` afterwards keeps the issuing CA.
    let issuing = std::fs::read(cfg.path("pki/client-ca.crt")).unwrap();
    t.init(false).await;
    assert_eq!(
        std::fs::read(cfg.path("pki/client-ca.crt")).unwrap(),
        issuing
    );

    let certs = t.certs().await;
    certs
        .store()
        .create_user("alice", "alice-password-long", Role::User)
        .await
        .unwrap();
    let acme = ClientId::parse("acme").unwrap();
    certs
        .store()
        .create_client(&acme, "alice", "localhost")
        .await
        .unwrap();
    let bundle_dir = t.dir.path().join("bundle");
    certs
        .issue_client(
            &acme,
            "localhost",
            30,
            &bundle_dir,
            msgrelay_admin::KeyAlgorithm::EcdsaP256,
            None,
        )
        .await
        .unwrap();
    let info = certs
        .revoke_client(&acme, Some("keyCompromise"))
        .await
        .unwrap();
    assert_eq!(info.revoked, 1);
    let crl = std::fs::read(cfg.path("pki/client-ca.crl")).unwrap();
    let loaded = msgrelay_tls::load_crl(&crl, &issuing, Duration::ZERO).unwrap();
    assert_eq!(loaded.revoked_serials.len(), 1);
    certs.store().close().await;

    if crate::support::have_openssl() {
        let o = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&root_crt)
            .arg("-untrusted")
            .arg(cfg.path("pki/client-ca.crt"))
            .arg(bundle_dir.join("client.crt"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl verify: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // A second run refuses and touches nothing.
    let other = offline.path().join("root2");
    let e = run(
        cfg,
        &format!("certs init-ca --offline-root {}", other.display()),
        "",
    )
    .await
    .unwrap_err();
    assert!(e.contains("client CA already exists"), "{e}");
    assert!(!other.exists());
    assert_eq!(
        std::fs::read(cfg.path("pki/client-ca.crt")).unwrap(),
        issuing
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
