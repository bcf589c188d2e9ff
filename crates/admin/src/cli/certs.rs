//! `msgrelay certs ...`: CAs, client and server certificates, revocation, the CRL.

use std::path::PathBuf;

use anyhow::Context;
use msgrelay_core::{ClientId, Config};
use msgrelay_tls::Pki;

use super::{connect_store, read_secret_line, std_streams, table, Io};
use crate::{CertAdmin, IssuedBundle, KeyAlgorithm};

/// `msgrelay certs` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CertsCommand {
    /// Create the client CA, the internal CA and the service certificates that are missing.
    InitCa {
        /// Make the client CA an issuing CA under a new root CA whose key is written to this
        /// directory (to be moved to offline storage); only before the client CA exists.
        #[arg(long, value_name = "DIR")]
        offline_root: Option<PathBuf>,
    },
    /// Issue a certificate for an existing client and write its bundle (client.crt, client.key, ca.crt, client.p12).
    IssueClient {
        /// The client (created with `msgrelay admin client create`).
        #[arg(long)]
        client_id: String,
        /// The client's domain (as given to `admin client create`).
        #[arg(long)]
        domain: String,
        /// Validity in days.
        #[arg(long, default_value_t = msgrelay_tls::pki::DEFAULT_CLIENT_DAYS)]
        days: u32,
        /// Bundle directory [default: <data_dir>/clients/<client_id>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Key algorithm of the new certificate.
        #[arg(long, default_value_t = KeyAlgorithm::EcdsaP256, value_parser = key_type_parser())]
        key_type: KeyAlgorithm,
        /// Read the PKCS#12 password from stdin instead of generating one into client.p12.pass.
        #[arg(long)]
        p12_password_stdin: bool,
    },
    /// Issue a new certificate for a client's domain; its other certificates stay valid until revoked.
    Renew {
        /// The client whose certificate is renewed.
        #[arg(long)]
        client_id: String,
        /// Bundle directory [default: <data_dir>/clients/<client_id>-<timestamp>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Validity in days.
        #[arg(long, default_value_t = msgrelay_tls::pki::DEFAULT_CLIENT_DAYS)]
        days: u32,
        /// Key algorithm of the new certificate.
        #[arg(long, default_value_t = KeyAlgorithm::EcdsaP256, value_parser = key_type_parser())]
        key_type: KeyAlgorithm,
        /// Read the PKCS#12 password from stdin instead of generating one into client.p12.pass.
        #[arg(long)]
        p12_password_stdin: bool,
    },
    /// (Re-)issue the proxy's server certificate for these names (the key is kept; restart the proxy after).
    IssueServer {
        /// DNS names of the proxy (repeatable); clients connect with one of them.
        #[arg(long, num_args = 1.., required = true)]
        dns: Vec<String>,
    },
    /// (Re-)issue the main server's certificate for more names (DNS names or IP addresses), so that
    /// proxies and workers on other hosts can reach it by them (the key is kept; restart the server after).
    IssueMainServer {
        /// A DNS name or IP address of the main server (repeatable); proxies and workers connect
        /// with one of them.
        #[arg(long = "name", num_args = 1.., required = true)]
        names: Vec<String>,
    },
    /// Revoke one certificate or all certificates of a client, and re-sign the CRL.
    Revoke {
        /// Serial number of one certificate (hex, as `certs list` shows it).
        #[arg(
            long,
            required_unless_present = "client_id",
            conflicts_with = "client_id"
        )]
        serial: Option<String>,
        /// Revoke every certificate of this client instead.
        #[arg(long)]
        client_id: Option<String>,
        /// RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, affiliationChanged, ...
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke a service certificate (proxy or worker) on the internal CRL and issue a new one.
    RevokeService {
        /// The service whose certificate is revoked: proxy or worker.
        #[arg(long, value_parser = ["proxy", "worker"])]
        service: String,
        /// RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, ...
        #[arg(long)]
        reason: Option<String>,
    },
    /// Re-sign the CRL now (valid 7 days; the main server also re-signs it when half has passed).
    Crl,
    /// List certificates: client, serial, fingerprint, domain, expiry, status.
    List {
        /// Only usable certificates that expire within this time (e.g. 30d, 12h, 2w, 365d).
        #[arg(long, value_parser = parse_within)]
        expiring_within: Option<chrono::Duration>,
    },
    /// Register a certificate signed with the client CA outside msgrelay (scripts/certs/generate_cert.sh).
    Register {
        /// The client the certificate belongs to.
        #[arg(long)]
        client_id: String,
        /// The certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
}

/// Runs a `certs` subcommand with the process's stdin/stdout.
pub async fn run_certs(cmd: CertsCommand, cfg: &Config) -> anyhow::Result<()> {
    let (mut input, mut output, interactive) = std_streams();
    run_certs_with(
        cmd,
        cfg,
        Io {
            input: &mut input,
            output: &mut output,
            interactive,
        },
    )
    .await
}

/// `--expiring-within`: a duration such as `30d`, `12h`, `90m`, `2w` or `1d 12h` (humantime; `m` is
/// minutes, `M` months). clap names the flag in front of the error.
fn parse_within(s: &str) -> Result<chrono::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is not a duration ({e}); give a number and a unit, e.g. --expiring-within 30d (also 12h, 90m, 2w)")
    })?;
    chrono::Duration::from_std(d)
        .map_err(|_| format!("{s:?} is too long; e.g. --expiring-within 365d"))
}

fn client_id(s: &str) -> anyhow::Result<ClientId> {
    ClientId::parse(s).map_err(|e| anyhow::anyhow!("--client-id: {e}"))
}

/// Runs a `certs` subcommand on the given streams.
pub async fn run_certs_with(cmd: CertsCommand, cfg: &Config, mut io: Io<'_>) -> anyhow::Result<()> {
    let pki = Pki::new(cfg.path("pki"));
    if let CertsCommand::InitCa { offline_root } = &cmd {
        let mut created = match offline_root {
            Some(dir) => pki.init_client_ca_under_offline_root(dir)?.created,
            None => Vec::new(),
        };
        created.extend(pki.init(&cfg.proxy.domains)?.created);
        if created.is_empty() {
            writeln!(
                io.output,
                "PKI in {} is complete; nothing created",
                pki.dir().display()
            )?;
        }
        for p in created {
            writeln!(io.output, "created {}", p.display())?;
        }
        if let Some(dir) = offline_root {
            let key = dir.join(format!("{}.key", msgrelay_tls::pki::CLIENT_ROOT_CA));
            writeln!(
                io.output,
                "the root CA key is {}; move {} to offline storage now \
                 (client certificates and the CRL are signed by the issuing CA {})",
                key.display(),
                dir.display(),
                pki.path("client-ca.crt").display()
            )?;
        }
        return Ok(());
    }
    if let CertsCommand::RevokeService { service, reason } = &cmd {
        let serial = pki.revoke_service(service, reason.as_deref())?;
        writeln!(
            io.output,
            "revoked {service} certificate {serial} on {}; issued a new {} (copy it and its key to the {service}'s host and restart it). \
             The main server refuses the old one within `proxy.revocation_refresh_secs`.",
            pki.path(msgrelay_tls::pki::INTERNAL_CRL_FILE).display(),
            pki.path(&format!("{service}.crt")).display(),
        )?;
        return Ok(());
    }
    if let CertsCommand::IssueServer { dns } = &cmd {
        for p in CertAdmin::issue_server_pki(&pki, dns)? {
            writeln!(io.output, "wrote {}", p.display())?;
        }
        writeln!(
            io.output,
            "restart the proxy to serve the new certificate; add new names to `proxy.domains` in the configuration"
        )?;
        return Ok(());
    }
    if let CertsCommand::IssueMainServer { names } = &cmd {
        let written = pki.issue_main_server(names)?;
        writeln!(io.output, "wrote {}", written.display())?;
        writeln!(
            io.output,
            "copy server.crt and server.key to every main server host and restart the servers; list their URLs in proxy.main_server_urls and worker.main_server_urls"
        )?;
        return Ok(());
    }
    let certs = CertAdmin::new(pki, connect_store(cfg).await?);
    let result = run_with_store(cmd, cfg, &certs, &mut io).await;
    certs.store().close().await;
    result
}

async fn run_with_store(
    cmd: CertsCommand,
    cfg: &Config,
    certs: &CertAdmin,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::InitCa { .. }
        | CertsCommand::IssueServer { .. }
        | CertsCommand::IssueMainServer { .. }
        | CertsCommand::RevokeService { .. } => {
            unreachable!("handled without a store")
        }
        CertsCommand::IssueClient {
            client_id: id,
            domain,
            days,
            out,
            key_type,
            p12_password_stdin,
        } => {
            let id = client_id(&id)?;
            let out = out.unwrap_or_else(|| cfg.path("clients").join(id.as_str()));
            let password = p12_password(io, p12_password_stdin, "certs issue-client")?;
            let bundle = certs
                .issue_client(&id, &domain, days, &out, key_type, password)
                .await?;
            print_bundle(io, &bundle)
        }
        CertsCommand::Renew {
            client_id: id,
            out,
            days,
            key_type,
            p12_password_stdin,
        } => {
            let id = client_id(&id)?;
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            let out = out.unwrap_or_else(|| cfg.path("clients").join(format!("{id}-{stamp}")));
            let password = p12_password(io, p12_password_stdin, "certs renew")?;
            let bundle = certs
                .renew_with(&id, &out, days, key_type, password)
                .await?;
            print_bundle(io, &bundle)?;
            writeln!(
                io.output,
                "the client's older certificates stay valid; once the client uses the new one, revoke them with \
                 `msgrelay certs revoke --serial SERIAL --reason superseded`"
            )?;
            Ok(())
        }
        CertsCommand::Revoke {
            serial,
            client_id: id,
            reason,
        } => {
            let info = match (serial, id) {
                (Some(serial), _) => certs.revoke_serial(&serial, reason.as_deref()).await?,
                (None, Some(id)) => {
                    certs
                        .revoke_client(&client_id(&id)?, reason.as_deref())
                        .await?
                }
                (None, None) => anyhow::bail!("give --serial SERIAL or --client-id ID"),
            };
            writeln!(
                io.output,
                "revoked; CRL re-signed: {} revoked certificate(s), next update {}",
                info.revoked, info.next_update
            )?;
            writeln!(
                io.output,
                "running proxies refuse the certificate within `proxy.revocation_refresh_secs`"
            )?;
            Ok(())
        }
        CertsCommand::Crl => {
            let info = certs.regenerate_crl().await?;
            let path = certs.pki().path(msgrelay_tls::pki::CRL_FILE);
            writeln!(
                io.output,
                "wrote {}: {} revoked certificate(s), next update {}",
                path.display(),
                info.revoked,
                info.next_update
            )?;
            Ok(())
        }
        CertsCommand::List { expiring_within } => {
            let rows: Vec<Vec<String>> = certs
                .list(expiring_within)
                .await?
                .into_iter()
                .map(|r| {
                    vec![
                        r.client_id.to_string(),
                        r.serial_hex,
                        r.fingerprint,
                        r.domain,
                        r.not_after.format("%Y-%m-%d %H:%M").to_string(),
                        r.status.to_string(),
                    ]
                })
                .collect();
            io.output.write_all(
                table::render(
                    &[
                        "CLIENT",
                        "SERIAL",
                        "FINGERPRINT (SHA-256)",
                        "DOMAIN",
                        "NOT AFTER (UTC)",
                        "STATUS",
                    ],
                    &rows,
                )
                .as_bytes(),
            )?;
            Ok(())
        }
        CertsCommand::Register {
            client_id: id,
            cert,
        } => {
            let id = client_id(&id)?;
            let pem =
                std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
            let row = certs.register_external(&id, &pem).await?;
            writeln!(
                io.output,
                "registered certificate for client {} ({})",
                row.client_id, row.status
            )?;
            writeln!(io.output, "  serial       {}", row.serial_hex)?;
            writeln!(io.output, "  fingerprint  {}", row.fingerprint)?;
            writeln!(io.output, "  not after    {}", row.not_after)?;
            Ok(())
        }
    }
}

fn p12_password(io: &mut Io<'_>, from_stdin: bool, cmd: &str) -> anyhow::Result<Option<String>> {
    if !from_stdin {
        return Ok(None);
    }
    read_secret_line(
        io,
        "PKCS#12 password",
        &format!("msgrelay {cmd} --p12-password-stdin ..."),
    )
    .map(Some)
}

fn print_bundle(io: &mut Io<'_>, b: &IssuedBundle) -> anyhow::Result<()> {
    writeln!(
        io.output,
        "issued certificate for client {} (domain {})",
        b.client_id, b.domain
    )?;
    writeln!(io.output, "  serial       {}", b.serial_hex)?;
    writeln!(io.output, "  fingerprint  {}", b.fingerprint)?;
    writeln!(io.output, "  not after    {}", b.not_after)?;
    writeln!(io.output, "  bundle       {}", b.dir.display())?;
    for f in &b.files {
        writeln!(
            io.output,
            "    {}",
            f.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        )?;
    }
    if let Some(p) = &b.p12_password_file {
        writeln!(
            io.output,
            "  the PKCS#12 password is in {} (owner-only)",
            p.display()
        )?;
    }
    Ok(())
}

/// `--key-type`: the names of `KeyAlgorithm`, listed in `--help`.
fn key_type_parser() -> impl clap::builder::TypedValueParser<Value = KeyAlgorithm> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(KeyAlgorithm::ALL.map(KeyAlgorithm::as_str))
        .try_map(|s| s.parse::<KeyAlgorithm>())
}

#[cfg(test)]
mod tests {
    use super::parse_within;
    use chrono::Duration;

    /// Every spelling the docs show (interface.md, certificates.md, admin-guide.md, operations.md).
    #[test]
    fn the_documented_durations_parse() {
        for (s, want) in [
            ("30d", Duration::days(30)),
            ("12h", Duration::hours(12)),
            ("365d", Duration::days(365)),
            ("90m", Duration::minutes(90)),
            ("2w", Duration::weeks(2)),
            ("1d 12h", Duration::hours(36)),
        ] {
            assert_eq!(parse_within(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn a_bad_duration_says_what_to_type() {
        for s in ["30", "30x", "d", "", "-5d"] {
            let e = parse_within(s).unwrap_err();
            assert!(e.contains("--expiring-within 30d"), "{s}: {e}");
        }
    }
}
