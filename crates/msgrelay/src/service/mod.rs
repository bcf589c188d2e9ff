//! `msgrelay service ...`: the roles as native Windows services (Service Control Manager).
//! The subcommand exists everywhere so scripts and docs are the same; on Linux and macOS it
//! explains that systemd units (deploy/linux/) do this job and exits with status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

#[cfg(windows)]
mod windows;

/// Which role a service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ServiceRole {
    Proxy,
    Worker,
    Server,
    Portal,
    Up,
}

impl ServiceRole {
    /// The role's name as used in service names and on the command line.
    #[cfg_attr(not(windows), allow(dead_code))] // used by the Windows service entry point
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Worker => "worker",
            Self::Server => "server",
            Self::Portal => "portal",
            Self::Up => "up",
        }
    }
}

/// Windows services (on Linux: see deploy/linux/*.service, `systemctl enable --now msgrelay.target`).
#[derive(Subcommand, Debug)]
#[command(
    long_about = "Registers and controls the msgrelay roles as native Windows services (Service Control \
Manager: services.msc, Get-Service, Event Log).\n\nOn Linux this subcommand does nothing: use the systemd \
units in deploy/linux/ (msgrelay-proxy.service, msgrelay-worker@.service, msgrelay-server.service, \
msgrelay-portal.service, msgrelay.target), e.g. `systemctl enable --now msgrelay.target`."
)]
pub enum ServiceCommand {
    /// Registers a role as a service: automatic (delayed) start, restart on failure after 5 s,
    /// 10 s and 30 s (counter reset after a day), its own virtual account, Event Log source.
    Install(InstallArgs),
    /// Stops (if running) and removes a service.
    Uninstall(NameArgs),
    /// Starts a service and waits until it runs.
    Start(NameArgs),
    /// Stops a service gracefully (in-flight requests finish, leases are released) and waits.
    Stop(NameArgs),
    /// Prints a service's state, start type, account and dependencies.
    Status(NameArgs),
    /// The service entry point the Service Control Manager starts (not for interactive use).
    #[command(hide = true)]
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The role this service runs.
    #[arg(long, value_enum)]
    pub role: ServiceRole,
    /// Service name (default msgrelay-<role>; give e.g. msgrelay-worker-2 for more workers).
    #[arg(long)]
    pub name: Option<String>,
    /// Account to run as (default: the virtual account NT SERVICE\<name>; "LocalSystem" allowed).
    #[arg(long)]
    pub account: Option<String>,
    /// Services that must run first, comma-separated (e.g. MariaDB,Memurai).
    #[arg(long, value_delimiter = ',')]
    pub depends_on: Vec<String>,
    /// KEY=VALUE set in this service's environment (repeatable), e.g.
    /// MSGRELAY_OPS__LISTEN=127.0.0.1:9101 so processes sharing one config get their own ops port.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Service name (e.g. msgrelay-proxy); or give --role for the default name.
    #[arg(required_unless_present = "role")]
    pub name: Option<String>,
    /// The role whose default service name (msgrelay-<role>) is meant.
    #[arg(long, value_enum)]
    pub role: Option<ServiceRole>,
}

impl NameArgs {
    /// The service name given, or the role's default.
    #[cfg_attr(not(windows), allow(dead_code))] // used by the Windows service entry point
    pub fn service_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| default_name(self.role.unwrap_or(ServiceRole::Up)))
    }
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The role the service runs (set by `service install`, not typed by hand).
    #[arg(long, value_enum)]
    pub role: ServiceRole,
    /// The service's name in the service manager (set by `service install`).
    #[arg(long)]
    pub name: String,
}

/// `msgrelay-<role>`.
#[cfg_attr(not(windows), allow(dead_code))] // used by the Windows service entry point
pub fn default_name(role: ServiceRole) -> String {
    format!("msgrelay-{}", role.as_str())
}

/// What `install` records so the service finds the same state as the admin who installed it.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(windows), allow(dead_code))] // used by the Windows service entry point
pub struct Location {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

/// Runs a `service` subcommand.
pub fn run(cmd: ServiceCommand, location: Location) -> anyhow::Result<ExitCode> {
    #[cfg(windows)]
    {
        windows::run(cmd, location)
    }
    #[cfg(not(windows))]
    {
        let _ = (cmd, location);
        eprintln!(
            "msgrelay service manages Windows services and does nothing on this platform.\n\
             On Linux use the systemd units in deploy/linux/: copy them to /etc/systemd/system/, then\n\
             `systemctl daemon-reload && systemctl enable --now msgrelay.target` (see docs/operations.md)."
        );
        Ok(ExitCode::from(2))
    }
}
