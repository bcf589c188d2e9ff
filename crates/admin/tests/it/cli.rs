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
    assert!(run(cfg, "certs list --expiring-within 5y", "")
        .await
        .unwrap_err()
        .contains("unknown unit"));

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
    let list = run(cfg, "admin token list --username alice", "")
        .await
        .unwrap();
    assert!(list.contains("cli") && !list.contains(&token), "{list}");
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
