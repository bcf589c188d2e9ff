//! The `msgrelay` binary: parses the command line and calls the role libraries.

mod bench;
#[cfg(test)]
mod cli_checks;
mod roles;
mod send;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use msgrelay_core::Config;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the platform's allocator: at full load glibc's malloc and free took ~15 % of
/// the proxy's, worker's and main server's CPU (docs/benchmarks.md, session 8 profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, v3): how long freed memory
/// stays with the process before it goes back to the OS (default 1,000 ms).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Gives memory this process frees back to the OS at once, unless the operator set
/// `MIMALLOC_PURGE_DELAY`. For the worker alone: it frees a batch's buffers several times a second,
/// and with the default delay they stayed resident, which put its RSS at 30–31 MB during a backlog
/// drain against a 30 MB bound (docs/benchmarks.md, session 9; 28 MB with this).
pub(crate) fn purge_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores the value in mimalloc's option table; any thread may
        // call it at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
    }
}

/// msgrelay: a secure store-and-forward message relay.
#[derive(Parser)]
#[command(
    name = "msgrelay",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("MSGRELAY_COMMIT"), ")"),
    about,
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Where the state lives; accepted before or after the subcommand.
#[derive(Args, Clone, Default)]
struct Common {
    /// Data directory (embedded defaults: ./data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (TOML); MSGRELAY_<SECTION>__<KEY> variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process on embedded defaults (bootstraps the data dir on first run).
    Up,
    /// Creates the CAs, service certificates, keys and the admin user (idempotent).
    Init {
        /// Domain served by the proxy (repeatable); adds to proxy.domains.
        #[arg(long = "domain", value_name = "NAME")]
        domains: Vec<String>,
        /// Also create the demo user and client with a certificate bundle.
        #[arg(long)]
        demo: bool,
    },
    /// The proxy role alone.
    Proxy,
    /// One worker process (worker.concurrency deliveries inside).
    Worker,
    /// The main server: internal API and (unless server.with_portal = false) the portal.
    Server,
    /// The portal alone: HTML pages and the portal JSON API on portal.listen.
    Portal,
    /// Sends one message over mutual TLS and prints its id.
    Send(send::SendArgs),
    /// Certificate lifecycle.
    #[command(subcommand)]
    Certs(msgrelay_admin::CertsCommand),
    /// Users, clients, API tokens and failed messages.
    #[command(subcommand)]
    Admin(msgrelay_admin::AdminCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Load generator over mutual TLS.
    Bench(bench::BenchArgs),
    /// Checks the installation: keys, certificates, CRL, database, queue, ports (exit 1 on a FAIL).
    Doctor,
    /// Online backup: queue (SQLite or the relay's Redis keys), store (SQLite or a MySQL/MariaDB
    /// dump), keys, PKI and client bundles, with a manifest of SHA-256 hashes.
    Backup {
        /// New or empty directory for the backup (created owner-only).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// New or empty directory for the keys, PKI and client bundles, kept apart from the data
        /// (a warning is printed when it is --out or inside it).
        #[arg(long, value_name = "DIR")]
        keys_out: Option<PathBuf>,
    },
    /// Restores a backup onto empty targets (data dir, database, Redis prefix) after checking
    /// every file's SHA-256; the relay must be stopped.
    Restore {
        /// Directory written by `msgrelay backup --out`.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Directory written by `msgrelay backup --keys-out`, when the keys were kept apart.
        #[arg(long, value_name = "DIR")]
        keys_from: Option<PathBuf>,
    },
    /// At-rest encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Windows services: install, uninstall, start, stop, status (Linux: systemd units in deploy/linux/).
    #[command(subcommand)]
    Service(service::ServiceCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Adds a new at-rest key and makes it current (older messages stay readable).
    Rotate,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Applies the store's migrations (also done at start-up).
    Migrate,
}

fn load_config(common: &Common) -> anyhow::Result<Config> {
    Config::load(common.config.as_deref(), common.data_dir.as_deref()).map_err(|e| anyhow::anyhow!("{e}\n(fix the value in the configuration file or the MSGRELAY_* variable and start again)"))
}

fn main() -> ExitCode {
    msgrelay_tls::install_crypto_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `send` exits like the Python client: 64 for any usage error (clap's default is 2,
            // which `send` uses for "refused by the relay").
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ if invoked_subcommand().as_deref() == Some("send") => send::EXIT_USAGE,
                _ => 2,
            };
            return ExitCode::from(code);
        }
    };
    let cli = match cli.command {
        Command::Service(cmd) => {
            // Not inside a runtime: the service entry point blocks this thread in the service
            // dispatcher and runs the role on a runtime of its own.
            let location = service::Location {
                config: cli.common.config,
                data_dir: cli.common.data_dir,
            };
            return match service::run(cmd, location) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        command => Cli {
            common: cli.common,
            command,
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The first argument that is not an option (or an option's value): the subcommand's name.
fn invoked_subcommand() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "--data-dir" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => return Some(a.to_owned()),
        }
    }
    None
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Send(args) => return Ok(send::run(args).await),
        Command::Bench(args) => return bench::run(args).await.map(|_| ExitCode::SUCCESS),
        _ => {}
    }
    let mut cfg = load_config(&cli.common)?;
    match cli.command {
        Command::Up => roles::up(cfg, CancellationToken::new()).await?,
        Command::Init { domains, demo } => {
            for d in &domains {
                if !cfg.proxy.domains.contains(d) {
                    cfg.proxy.domains.push(d.clone());
                }
            }
            cfg.validate()?;
            let report =
                msgrelay_admin::init(&cfg, &msgrelay_admin::InitOptions { domains, demo }).await?;
            for line in &report.created {
                println!("created {line}");
            }
            if report.created.is_empty() {
                println!(
                    "nothing to do: {} is already initialised",
                    cfg.data_dir.display()
                );
            }
            println!(
                "credentials (passwords): {}",
                report.credentials_file.display()
            );
        }
        Command::Proxy => roles::proxy(cfg, CancellationToken::new()).await?,
        Command::Worker => roles::worker(cfg, CancellationToken::new()).await?,
        Command::Server => roles::server(cfg, CancellationToken::new()).await?,
        Command::Portal => roles::portal(cfg, CancellationToken::new()).await?,
        Command::Certs(cmd) => msgrelay_admin::run_certs(cmd, &cfg).await?,
        Command::Admin(cmd) => msgrelay_admin::run_admin(cmd, &cfg).await?,
        Command::Db(DbCommand::Migrate) => {
            let store = msgrelay_store::Store::connect(&cfg.database(), 1).await?;
            store.migrate().await?;
            println!("migrations applied");
        }
        Command::Doctor => {
            if !msgrelay_admin::maintenance::run_doctor(&cfg, &mut std::io::stdout()).await? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Backup { out, keys_out } => {
            let opts = msgrelay_admin::maintenance::BackupOptions { out, keys_out };
            msgrelay_admin::maintenance::run_backup(&cfg, &opts, &mut std::io::stdout()).await?
        }
        Command::Restore { from, keys_from } => {
            let opts = msgrelay_admin::maintenance::RestoreOptions { from, keys_from };
            msgrelay_admin::maintenance::run_restore(&cfg, &opts, &mut std::io::stdout()).await?
        }
        Command::Keys(KeysCommand::Rotate) => {
            msgrelay_admin::maintenance::run_keys_rotate(&cfg, &mut std::io::stdout())?
        }
        Command::Send(_) | Command::Bench(_) | Command::Service(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod allocator_tests {
    use super::*;

    /// The option index is mimalloc's purge delay: the only option whose default is 1,000 (ms),
    /// and setting it takes effect.
    #[test]
    fn the_worker_sets_mimallocs_purge_delay_to_zero() {
        // SAFETY: reading and storing an option value, as in purge_freed_memory_at_once.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000);
        purge_freed_memory_at_once();
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            0
        );
    }
}
