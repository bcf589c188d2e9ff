//! The Windows side of `msgrelay service`: Service Control Manager registration and control
//! (windows-service crate), and the service entry point. Stop and shutdown cancel the same token
//! Ctrl-C does, so a service drains exactly like an interactive run: in-flight requests finish,
//! workers finish their leased batch, nothing is killed.

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceDependency, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
    ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::{default_name, InstallArgs, Location, RunArgs, ServiceCommand};

mod accounts;
pub(crate) mod eventlog;

/// How long `start`/`stop` wait for the service to get there.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(90);
/// What a stop may take: the worker's delivery timeout bounds a leased batch (default 20 s).
const STOP_WAIT_HINT: Duration = Duration::from_secs(30);

pub fn run(cmd: ServiceCommand, location: Location) -> anyhow::Result<ExitCode> {
    match cmd {
        ServiceCommand::Install(args) => install(args, location)?,
        ServiceCommand::Uninstall(n) => uninstall(&n.service_name())?,
        ServiceCommand::Start(n) => start(&n.service_name())?,
        ServiceCommand::Stop(n) => stop(&n.service_name())?,
        ServiceCommand::Status(n) => return status(&n.service_name()),
        ServiceCommand::Run(args) => run_service(args, location)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn manager(access: ServiceManagerAccess) -> anyhow::Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access)
        .context("cannot open the Service Control Manager (run from an elevated prompt)")
}

fn install(args: InstallArgs, location: Location) -> anyhow::Result<()> {
    let name = args.name.clone().unwrap_or_else(|| default_name(args.role));
    if name.is_empty() || name.len() > 200 || name.contains(['/', '\\']) {
        bail!("--name: '{name}' is not a service name");
    }
    let exe = std::env::current_exe().context("cannot locate msgrelay.exe")?;
    // The service must find the state the administrator set up: record absolute paths.
    let mut launch: Vec<OsString> = Vec::new();
    if let Some(config) = &location.config {
        launch.push("--config".into());
        launch.push(
            std::path::absolute(config)
                .context("--config")?
                .into_os_string(),
        );
    }
    if let Some(dir) = &location.data_dir {
        launch.push("--data-dir".into());
        launch.push(
            std::path::absolute(dir)
                .context("--data-dir")?
                .into_os_string(),
        );
    }
    launch.extend(
        [
            "service",
            "run",
            "--role",
            args.role.as_str(),
            "--name",
            name.as_str(),
        ]
        .map(OsString::from),
    );
    if let Some(bad) = args
        .env
        .iter()
        .find(|e| !e.split_once('=').is_some_and(|(k, _)| !k.is_empty()))
    {
        bail!("--env: '{bad}' is not KEY=VALUE");
    }
    let account = match args.account.as_deref() {
        None => Some(format!(r"NT SERVICE\{name}")),
        Some(a) if a.eq_ignore_ascii_case("LocalSystem") => None,
        Some(a) => Some(a.to_owned()),
    };
    let info = ServiceInfo {
        name: name.clone().into(),
        display_name: format!("msgrelay {} ({name})", args.role.as_str()).into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: launch,
        dependencies: args
            .depends_on
            .iter()
            .filter(|d| !d.is_empty())
            .map(|d| ServiceDependency::Service(d.into()))
            .collect(),
        account_name: account.clone().map(Into::into),
        account_password: None,
    };
    let scm = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let service = scm
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS,
        )
        .with_context(|| format!("cannot create service {name}"))?;
    // The service exists from here on; a setting that fails is reported, not fatal, so the
    // administrator can fix it with sc.exe instead of finding a half-removed service.
    let mut warnings: Vec<String> = Vec::new();
    let mut check = |what: &str, r: windows_service::Result<()>| {
        if let Err(e) = r {
            warnings.push(format!("{what}: {e}"));
        }
    };
    check(
        "description",
        service.set_description(format!(
            "msgrelay secure message relay: the {} role. Logs: the data directory's logs folder and the Application event log (source msgrelay).",
            args.role.as_str()
        )),
    );
    // Delayed automatic start: after the database and queue services the machine starts first.
    check(
        "delayed automatic start",
        service.set_delayed_auto_start(true),
    );
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    check(
        "recovery actions",
        service.update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(5), restart(10), restart(30)]),
        }),
    );
    // A role that exits with an error (e.g. the database is down at start) is restarted too.
    check(
        "recovery on non-crash failures",
        service.set_failure_actions_on_non_crash_failures(true),
    );
    if !args.env.is_empty() {
        if let Err(e) = accounts::set_environment(&name, &args.env) {
            warnings.push(format!("environment: {e}"));
        }
    }
    println!("installed service {name} ({} role)", args.role.as_str());
    println!("  start: automatic (delayed); recovery: restart after 5 s, 10 s, 30 s; failure count reset after 1 day");
    println!("  account: {}", account.as_deref().unwrap_or("LocalSystem"));
    if !args.depends_on.is_empty() {
        println!("  depends on: {}", args.depends_on.join(", "));
    }
    for e in &args.env {
        println!(
            "  environment: {}",
            e.split_once('=').map_or(e.as_str(), |(k, _)| k)
        );
    }
    for w in &warnings {
        println!("  WARNING: could not set the {w}; set it with sc.exe (see docs/windows.md)");
    }
    match eventlog::register_source() {
        Ok(()) => println!("  event log: source 'msgrelay' in the Application log"),
        Err(e) => println!(
            "  WARNING: event log source not registered ({e}); events still go to the file logs"
        ),
    }
    if let Some(account) = &account {
        let cfg =
            msgrelay_core::Config::load(location.config.as_deref(), location.data_dir.as_deref())?;
        match accounts::grant_data_dir(account, &cfg.data_dir) {
            Ok(n) => println!("  access: {account} added to the DACLs of {} ({n} entries)", cfg.data_dir.display()),
            Err(e) => println!(
                "  WARNING: could not give {account} access to {} ({e}); run `icacls \"{}\" /grant \"{account}:(OI)(CI)M\" /T`",
                cfg.data_dir.display(),
                cfg.data_dir.display()
            ),
        }
    }
    Ok(())
}

fn uninstall(name: &str) -> anyhow::Result<()> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(
            name,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .with_context(|| format!("cannot open service {name}"))?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        let _ = service.stop();
        wait_for(name, &service, ServiceState::Stopped)?;
    }
    service
        .delete()
        .with_context(|| format!("cannot delete service {name}"))?;
    println!("removed service {name}");
    Ok(())
}

fn start(name: &str) -> anyhow::Result<()> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(name, ServiceAccess::QUERY_STATUS | ServiceAccess::START)
        .with_context(|| format!("cannot open service {name}"))?;
    if service.query_status()?.current_state != ServiceState::Running {
        service
            .start::<&OsStr>(&[])
            .with_context(|| format!("cannot start service {name}"))?;
        wait_for(name, &service, ServiceState::Running)?;
    }
    println!("{name}: running");
    Ok(())
}

fn stop(name: &str) -> anyhow::Result<()> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)
        .with_context(|| format!("cannot open service {name}"))?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service
            .stop()
            .with_context(|| format!("cannot stop service {name}"))?;
        wait_for(name, &service, ServiceState::Stopped)?;
    }
    println!("{name}: stopped");
    Ok(())
}

fn status(name: &str) -> anyhow::Result<ExitCode> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = match scm.open_service(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG,
    ) {
        Ok(s) => s,
        Err(_) => {
            println!("{name}: not installed");
            return Ok(ExitCode::from(3));
        }
    };
    let st = service.query_status()?;
    let state = format!("{:?}", st.current_state).to_uppercase();
    match st.process_id {
        Some(pid) if pid != 0 => println!("{name}: {state} (pid {pid})"),
        _ => println!("{name}: {state}"),
    }
    if let Ok(cfg) = service.query_config() {
        println!("  start type: {:?}", cfg.start_type);
        println!(
            "  account: {}",
            cfg.account_name
                .as_deref()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let deps: Vec<String> = cfg
            .dependencies
            .iter()
            .map(|d| d.to_system_identifier().to_string_lossy().into_owned())
            .collect();
        if !deps.is_empty() {
            println!("  depends on: {}", deps.join(", "));
        }
    }
    Ok(if st.current_state == ServiceState::Running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn wait_for(
    name: &str,
    service: &windows_service::service::Service,
    want: ServiceState,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    loop {
        let st = service.query_status()?;
        if st.current_state == want {
            return Ok(());
        }
        if want == ServiceState::Running && st.current_state == ServiceState::Stopped {
            bail!("{name} stopped during start-up: see the Application event log (source msgrelay) and the file logs");
        }
        if Instant::now() > deadline {
            bail!(
                "{name} is still {:?} after {} s",
                st.current_state,
                CONTROL_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What the dispatcher thread hands to `service_main`.
static RUN: OnceLock<(RunArgs, Location)> = OnceLock::new();

windows_service::define_windows_service!(ffi_service_main, service_main);

fn run_service(args: RunArgs, location: Location) -> anyhow::Result<()> {
    let name = args.name.clone();
    RUN.set((args, location))
        .map_err(|_| anyhow!("service entry point entered twice"))?;
    // Blocks until the service stops; fails when not started by the Service Control Manager.
    service_dispatcher::start(&name, ffi_service_main)
        .with_context(|| format!("`service run` is started by the Service Control Manager (net start {name}), not by hand"))
}

fn service_main(_arguments: Vec<OsString>) {
    let Some((args, location)) = RUN.get() else {
        return;
    };
    if let Err(e) = run_role_as_service(args, location) {
        eventlog::report(
            eventlog::Level::Error,
            &format!("{} stopped with an error: {e:#}", args.name),
        );
    }
}

fn run_role_as_service(args: &RunArgs, location: &Location) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let on_control = {
        let stop = stop.clone();
        move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
                stop.cancel();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let handle = service_control_handler::register(&args.name, on_control)?;
    let report = |state, checkpoint, exit: ServiceExitCode| {
        let _ = handle.set_service_status(service_status(state, checkpoint, exit));
    };
    report(ServiceState::StartPending, 1, ServiceExitCode::NO_ERROR);
    let result = run_role(args, location, stop, handle);
    let exit = match &result {
        Ok(()) => {
            eventlog::report(
                eventlog::Level::Info,
                &format!("{} stopped gracefully", args.name),
            );
            ServiceExitCode::NO_ERROR
        }
        // A non-zero exit makes the recovery actions (restart) apply.
        Err(_) => ServiceExitCode::ServiceSpecific(1),
    };
    report(ServiceState::Stopped, 0, exit);
    result
}

fn run_role(
    args: &RunArgs,
    location: &Location,
    stop: CancellationToken,
    handle: ServiceStatusHandle,
) -> anyhow::Result<()> {
    let cfg =
        msgrelay_core::Config::load(location.config.as_deref(), location.data_dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let _ = handle.set_service_status(service_status(
            ServiceState::Running,
            0,
            ServiceExitCode::NO_ERROR,
        ));
        eventlog::report(
            eventlog::Level::Info,
            &format!(
                "{} started ({} role, data in {})",
                args.name,
                args.role.as_str(),
                cfg.data_dir.display()
            ),
        );
        // While draining, keep telling the SCM we are making progress (StopPending + checkpoint).
        let pending = {
            let stop = stop.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                for checkpoint in 1.. {
                    let _ = handle.set_service_status(service_status(
                        ServiceState::StopPending,
                        checkpoint,
                        ServiceExitCode::NO_ERROR,
                    ));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            })
        };
        let warnings = tokio::spawn(forward_warnings(
            args.name.clone(),
            cfg.ops.listen.clone(),
            stop.clone(),
        ));
        let result = crate::roles::run(args.role, cfg, stop).await;
        pending.abort();
        warnings.abort();
        result
    })
}

/// Copies the ops listener's readiness warnings (certificate and CRL expiry) to the Event Log,
/// each text once, so monitoring that watches the Event Log sees them without scraping /ready.
async fn forward_warnings(name: String, ops_listen: String, stop: CancellationToken) {
    const EVERY: Duration = Duration::from_secs(15 * 60);
    if ops_listen.ends_with(":0") {
        return; // an ephemeral port is not known here
    }
    let url = format!("http://{ops_listen}/ready");
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(60)) => {} }
        if let Ok(resp) = client.get(&url).send().await {
            if let Ok(body) = resp.json::<serde_json::Value>().await {
                for (key, text) in body["warnings"].as_object().into_iter().flatten() {
                    let line = format!("{name}: {key}: {}", text.as_str().unwrap_or_default());
                    if seen.insert(line.clone()) {
                        eventlog::report(eventlog::Level::Warning, &line);
                    }
                }
            }
        }
        tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(EVERY) => {} }
    }
}

fn service_status(
    state: ServiceState,
    checkpoint: u32,
    exit_code: ServiceExitCode,
) -> ServiceStatus {
    let controls_accepted = match state {
        ServiceState::Running => ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        _ => ServiceControlAccept::empty(),
    };
    let wait_hint = match state {
        ServiceState::StartPending => Duration::from_secs(30),
        ServiceState::StopPending => STOP_WAIT_HINT,
        _ => Duration::ZERO,
    };
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code,
        checkpoint,
        wait_hint,
        process_id: None,
    }
}
