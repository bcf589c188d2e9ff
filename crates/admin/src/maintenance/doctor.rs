//! `msgrelay doctor`: checks an installation and prints a table, one row per check with what to do.
//! Read-only except that connecting to the store applies pending migrations (as every role does).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use msgrelay_at_rest::AtRestKeys;
use msgrelay_core::Config;
use msgrelay_queue::Queue;
use msgrelay_sealing::SealingKeyPair;
use msgrelay_store::Store;
use msgrelay_tls::Pki;

use super::files::broader_access;
use super::{sqlite_queue_path, sqlite_store_path, AT_REST_KEY_FILE};

/// Certificates expiring sooner than this are reported as warnings.
const EXPIRY_WARNING_DAYS: i64 = 30;
/// Upper bound for one backend check, so a dead database host does not hang the report.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(15);

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// One line of the report: what was checked, what was found, and for WARN/FAIL what to do.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub name: String,
    pub detail: String,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            status: Status::Ok,
            name: name.into(),
            detail: detail.into(),
        }
    }
    fn warn(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            status: Status::Warn,
            name: name.into(),
            detail: detail.into(),
        }
    }
    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            status: Status::Fail,
            name: name.into(),
            detail: detail.into(),
        }
    }
}

/// Runs every check (a progress bar on stderr while the backends answer, when it is a terminal).
pub async fn doctor(cfg: &Config) -> Vec<Check> {
    let bar = crate::progress::bar(3, "doctor: files");
    let mut checks = vec![Check::ok(
        "config",
        format!(
            "valid (data_dir {}, database {}, queue {:?})",
            cfg.data_dir.display(),
            cfg.database.url.split(':').next().unwrap_or("?"),
            cfg.queue.backend
        ),
    )];
    if !cfg.data_dir.is_dir() {
        checks.push(Check::fail("data dir", format!("{} does not exist — run `msgrelay init` (or point --data-dir/--config at the right place)", cfg.data_dir.display())));
    } else {
        checks.push(data_dir_check(&cfg.data_dir));
        checks.extend(key_checks(cfg).into_iter().chain(pki_checks(cfg)));
    }
    bar.inc(1);
    bar.set_message("doctor: database");
    checks.push(database_check(cfg).await);
    bar.inc(1);
    bar.set_message("doctor: queue");
    checks.push(queue_check(cfg).await);
    bar.inc(1);
    checks.extend(port_checks(cfg));
    bar.finish_and_clear();
    checks
}

/// The report: a table (STATUS, CHECK, DETAIL; one row per check) and a summary line.
pub fn report(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| vec![c.status.to_string(), c.name.clone(), c.detail.clone()])
        .collect();
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    let (ok, warn, fail) = (count(Status::Ok), count(Status::Warn), count(Status::Fail));
    crate::cli::table::render(&["STATUS", "CHECK", "DETAIL"], &rows)
        + &format!("doctor: {ok} ok, {warn} warning(s), {fail} failure(s)\n")
}

fn permission_check(name: &str, path: &Path) -> Option<Check> {
    broader_access(path)
        .map(|(what, fix)| Check::warn(name, format!("{} {what} — run `{fix}`", path.display())))
}

fn data_dir_check(dir: &Path) -> Check {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if mode & 0o007 != 0 {
            return Check::warn(
                "data dir",
                format!(
                    "{} is accessible to other users (mode {:o}) — run `chmod o-rwx {}`",
                    dir.display(),
                    mode & 0o777,
                    dir.display()
                ),
            );
        }
    }
    #[cfg(windows)]
    {
        if let Some((what, fix)) = broader_access(dir) {
            return Check::warn(
                "data dir",
                format!("{} {what} — run `{fix}`", dir.display()),
            );
        }
    }
    Check::ok(
        "data dir",
        format!("{} exists, no access for other users", dir.display()),
    )
}

fn key_checks(cfg: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let lost = "restore keys/ from a backup; do not run `msgrelay init` to recreate it if messages are stored or queued (new keys cannot read them)";
    for rel in ["keys/sealing.key", "keys/proxy-sealing.key"] {
        let path = cfg.path(rel);
        let name = format!("key {rel}");
        if !path.exists() {
            checks.push(Check::fail(
                name,
                format!("{} is missing — {lost}", path.display()),
            ));
            continue;
        }
        match SealingKeyPair::load(&path) {
            Ok(k) => checks.push(permission_check(&name, &path).unwrap_or_else(|| {
                Check::ok(&name, format!("present, owner-only, key id {}", k.key_id()))
            })),
            Err(e) => checks.push(Check::fail(name, format!("{e} — {lost}"))),
        }
    }
    let path = cfg.path(AT_REST_KEY_FILE);
    let name = format!("key {AT_REST_KEY_FILE}");
    if !path.exists() {
        checks.push(Check::fail(
            name,
            format!("{} is missing — {lost}", path.display()),
        ));
    } else {
        match AtRestKeys::load(&path) {
            Ok(k) => checks.push(permission_check(&name, &path).unwrap_or_else(|| {
                Check::ok(
                    &name,
                    format!("present, owner-only, current key {}", k.current_key_id()),
                )
            })),
            Err(e) => checks.push(Check::fail(name, format!("{e} — {lost}"))),
        }
    }
    checks
}

/// The PKI files `init` creates for this configuration (certificate, key) by stem.
fn pki_stems(cfg: &Config) -> Vec<String> {
    let mut stems: Vec<String> = [
        "client-ca",
        "internal-ca",
        "server",
        "portal",
        "proxy",
        "worker",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    stems.extend(
        cfg.proxy
            .domains
            .iter()
            .map(|d| format!("proxy-{}", d.to_ascii_lowercase())),
    );
    stems
}

fn pki_checks(cfg: &Config) -> Vec<Check> {
    let pki = Pki::new(cfg.path("pki"));
    let now = Utc::now();
    let mut checks = Vec::new();
    for stem in pki_stems(cfg) {
        let (crt, key) = (
            pki.path(&format!("{stem}.crt")),
            pki.path(&format!("{stem}.key")),
        );
        let name = format!("certificate pki/{stem}.crt");
        let missing: Vec<String> = [&crt, &key]
            .iter()
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            checks.push(Check::fail(name, format!("missing {} — run `msgrelay init` (it only creates what is missing), or restore pki/ from a backup", missing.join(", "))));
            continue;
        }
        if let Some(c) = permission_check(&format!("key pki/{stem}.key"), &key) {
            checks.push(c);
        }
        checks.push(match cert_not_after(&crt) {
            Err(e) => Check::fail(name, format!("{e} — restore pki/ from a backup")),
            Ok(t) if t <= now => {
                Check::fail(name, format!("expired at {t} — {}", renew_hint(&stem)))
            }
            Ok(t) if t - now < chrono::Duration::days(EXPIRY_WARNING_DAYS) => Check::warn(
                name,
                format!(
                    "expires at {t} ({} days) — {}",
                    (t - now).num_days(),
                    renew_hint(&stem)
                ),
            ),
            Ok(t) => Check::ok(name, format!("valid until {}", t.format("%Y-%m-%d"))),
        });
    }
    checks.push(crl_check(cfg, &pki, now));
    checks
}

fn renew_hint(stem: &str) -> String {
    match stem.strip_prefix("proxy-") {
        Some(domain) => format!("`msgrelay certs issue-server --dns {domain}`, then restart the proxy"),
        None if stem.ends_with("-ca") => "issue a new CA and re-issue every certificate it signed (docs/certificates.md)".to_owned(),
        None => format!("delete pki/{stem}.crt and run `msgrelay init` to issue a new one, then restart the roles"),
    }
}

fn cert_not_after(path: &Path) -> Result<DateTime<Utc>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let der = msgrelay_tls::load_certs_pem(&pem)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} holds no certificate", path.display()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("{} is not a valid certificate: {e}", path.display()))?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| format!("{} has an out-of-range expiry", path.display()))
}

fn crl_check(cfg: &Config, pki: &Pki, now: DateTime<Utc>) -> Check {
    let name = format!("CRL pki/{}", msgrelay_tls::pki::CRL_FILE);
    let (crl, ca) = match (
        pki.read(msgrelay_tls::pki::CRL_FILE),
        pki.read("client-ca.crt"),
    ) {
        (Ok(crl), Ok(ca)) => (crl, ca),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail(name, format!("{e} — run `msgrelay certs crl`"))
        }
    };
    let grace = Duration::from_secs(cfg.proxy.crl_grace_secs);
    match msgrelay_tls::load_crl(&crl, &ca, grace) {
        Err(e) => Check::fail(name, format!("{e} — run `msgrelay certs crl`; the proxy refuses every client until the CRL is valid")),
        Ok(l) if l.next_update <= now => Check::warn(
            name,
            format!("next update {} has passed (proxies refuse all clients after the grace period) — run `msgrelay certs crl`; is the main server running?", l.next_update),
        ),
        Ok(l) => Check::ok(name, format!("valid, {} revoked, next update {}", l.revoked_serials.len(), l.next_update.format("%Y-%m-%d %H:%M UTC"))),
    }
}

async fn database_check(cfg: &Config) -> Check {
    let name = "database";
    if let Some(path) = sqlite_store_path(cfg) {
        // Connecting with mode=rwc would create an empty database and hide a wrong data dir.
        if !path.exists() {
            return Check::fail(
                name,
                format!(
                    "{} does not exist — run `msgrelay init`, or restore it from a backup",
                    path.display()
                ),
            );
        }
    }
    let connect = async {
        let store = Store::connect(&cfg.database(), 1).await?;
        store.ping().await?;
        let dialect = store.dialect();
        store.close().await;
        Ok::<_, msgrelay_store::StoreError>(dialect)
    };
    match tokio::time::timeout(BACKEND_TIMEOUT, connect).await {
        Ok(Ok(dialect)) => Check::ok(name, format!("reachable ({dialect:?}), migrations applied")),
        Ok(Err(e)) => Check::fail(
            name,
            format!("{e} — check `database.url` and that the database server runs"),
        ),
        Err(_) => Check::fail(
            name,
            format!("no answer within {BACKEND_TIMEOUT:?} — check `database.url` and the network"),
        ),
    }
}

async fn queue_check(cfg: &Config) -> Check {
    let name = "queue";
    if let Some(path) = sqlite_queue_path(cfg) {
        if !path.exists() {
            return Check::ok(
                name,
                format!(
                    "{} not created yet (the first start of a role creates it)",
                    path.display()
                ),
            );
        }
    }
    let check = async {
        let queue = Queue::connect(&cfg.queue, &cfg.data_dir).await?;
        queue.stats().await
    };
    match tokio::time::timeout(BACKEND_TIMEOUT, check).await {
        Ok(Ok(s)) => Check::ok(
            name,
            format!("reachable ({:?}): {} ready, {} in flight, {} delayed, {} failed", cfg.queue.backend, s.ready, s.in_flight, s.delayed, s.failed),
        ),
        Ok(Err(e)) => Check::fail(name, format!("{e} — for Redis check `queue.redis_url`, appendonly yes and maxmemory-policy noeviction (docs/operations.md §3)")),
        Err(_) => Check::fail(name, format!("no answer within {BACKEND_TIMEOUT:?} — check `queue.redis_url` and the network")),
    }
}

/// Informational: whether each listen address is free or taken (by a running relay or another program).
fn port_checks(cfg: &Config) -> Vec<Check> {
    [("proxy.listen", &cfg.proxy.listen), ("server.listen", &cfg.server.listen), ("portal.listen", &cfg.portal.listen), ("ops.listen", &cfg.ops.listen)]
        .into_iter()
        .map(|(key, addr)| match std::net::TcpListener::bind(addr.as_str()) {
            Ok(_) => Check::ok(format!("port {key}"), format!("{addr} is free")),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                Check::ok(format!("port {key}"), format!("{addr} is in use (a running msgrelay, or another program if the relay is stopped)"))
            }
            Err(e) => Check::warn(format!("port {key}"), format!("cannot bind {addr}: {e} — check the address belongs to this host")),
        })
        .collect()
}
