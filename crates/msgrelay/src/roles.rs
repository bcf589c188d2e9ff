//! Running the roles: each alone (`proxy`, `worker`, `server`, `portal`) or all together (`up`).

use std::sync::Arc;

use msgrelay_core::Config;
use msgrelay_ops::{Metrics, OpsHandle, OpsState};
use msgrelay_portal::Portal;
use msgrelay_proxy::Proxy;
use msgrelay_queue::Queue;
use msgrelay_server::Server;
use msgrelay_worker::Worker;
use tokio_util::sync::CancellationToken;

/// Resolves on Ctrl-C, SIGTERM on Unix (systemd), or when `stop` is cancelled (the Windows
/// service's Stop/Shutdown control): every way out goes through the same drain.
async fn shutdown_signal(stop: &CancellationToken) {
    let ctrl_c = async {
        // Without a console (a Windows service) there is no Ctrl-C to wait for: an error here
        // must not read as "stop now".
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {}, _ = stop.cancelled() => {} }
}

/// Sets logging up and logs which instance this process is (`instance`, else `<hostname>-<role>`).
fn logging(cfg: &Config, role: &str) -> (Option<impl Drop>, String) {
    let dir = (!cfg.log.dir.as_os_str().is_empty()).then(|| cfg.path(&cfg.log.dir));
    let guard = msgrelay_ops::telemetry::init(&cfg.log.level, dir.as_deref(), cfg.log.keep_days);
    let instance = msgrelay_ops::instance_name(cfg, role);
    tracing::info!(
        instance = %instance,
        role,
        version = env!("CARGO_PKG_VERSION"),
        "starting"
    );
    (guard, instance)
}

/// Runs `role` until Ctrl-C, SIGTERM or `stop`.
#[cfg_attr(not(windows), allow(dead_code))] // used by the Windows service entry point
pub async fn run(
    role: crate::service::ServiceRole,
    cfg: Config,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    use crate::service::ServiceRole;
    match role {
        ServiceRole::Proxy => proxy(cfg, stop).await,
        ServiceRole::Worker => worker(cfg, stop).await,
        ServiceRole::Server => server(cfg, stop).await,
        ServiceRole::Portal => portal(cfg, stop).await,
        ServiceRole::Up => up(cfg, stop).await,
    }
}

/// How often each process logs its counts (per-message lines are at debug level).
const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts the ops listener, waits for a signal, stops everything.
async fn serve_until_signal(
    cfg: &Config,
    ops: OpsState,
    shutdown: CancellationToken,
    stop: &CancellationToken,
    ready_line: String,
) -> anyhow::Result<OpsHandle> {
    ops.metrics.spawn_summary(SUMMARY_EVERY, shutdown.clone());
    let handle = OpsHandle::start(&cfg.ops.listen, ops, shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind ops.listen {}: {e}", cfg.ops.listen))?;
    // A stable line for scripts and tests (addresses are real even with port 0).
    println!("msgrelay ready: {ready_line} ops=http://{}", handle.addr);
    shutdown_signal(stop).await;
    tracing::info!("shutting down: finishing in-flight work");
    shutdown.cancel();
    Ok(handle)
}

/// Connects the configured queue once per process and registers its readiness check and the
/// queue-depth gauges; every role in the process shares it (one writer, one set of connections).
async fn connect_queue(
    cfg: &Config,
    metrics: &Arc<Metrics>,
    ops: &mut OpsState,
) -> anyhow::Result<Queue> {
    let queue = Queue::connect(&cfg.queue, &cfg.data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("queue: {e}"))?;
    let q = queue.clone();
    ops.add_check("queue", move || {
        let q = q.clone();
        async move { q.ping().await.map_err(|e| e.to_string()) }
    });
    let (q, m) = (queue.clone(), metrics.clone());
    ops.add_sampler(move || {
        let (q, m) = (q.clone(), m.clone());
        async move {
            if let Ok(s) = q.stats().await {
                m.set_queue_depth(s.ready, s.in_flight, s.delayed, s.failed);
            }
        }
    });
    Ok(queue)
}

/// What a process running one role sets up before the role starts: config, metrics, the ops
/// listener's state, the shutdown token the role drains on, and the process's one queue.
struct Process {
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    ops: OpsState,
    shutdown: CancellationToken,
    queue: Queue,
}

impl Process {
    async fn new(cfg: Config, instance: &str) -> anyhow::Result<Self> {
        let cfg = Arc::new(cfg);
        let metrics = Arc::new(Metrics::for_instance(instance));
        let mut ops = OpsState::new(metrics.clone());
        let queue = connect_queue(&cfg, &metrics, &mut ops).await?;
        Ok(Self {
            cfg,
            metrics,
            ops,
            shutdown: CancellationToken::new(),
            queue,
        })
    }
}

pub async fn proxy(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let (_guard, instance) = logging(&cfg, "proxy");
    let p = Process::new(cfg, &instance).await?;
    let mut ops = p.ops;
    let proxy = Proxy::start(
        p.cfg.clone(),
        p.queue,
        p.metrics,
        &mut ops,
        p.shutdown.clone(),
    )
    .await?;
    let line = format!("proxy=https://{}", proxy.addr);
    let ops = serve_until_signal(&p.cfg, ops, p.shutdown, &stop, line).await?;
    proxy.join().await;
    ops.join().await;
    tracing::info!(
        role = "proxy",
        "stopped gracefully: in-flight requests finished"
    );
    Ok(())
}

pub async fn worker(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let (_guard, instance) = logging(&cfg, "worker");
    let p = Process::new(cfg, &instance).await?;
    let worker = Worker::start(p.cfg.clone(), p.queue, p.metrics, p.shutdown.clone()).await?;
    let ops = serve_until_signal(&p.cfg, p.ops, p.shutdown, &stop, "worker=running".into()).await?;
    worker.join().await;
    ops.join().await;
    tracing::info!(
        role = "worker",
        "stopped gracefully: leased batches finished, no lease held"
    );
    Ok(())
}

/// The main server; unless `server.with_portal` is false, also the portal.
pub async fn server(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let (_guard, instance) = logging(&cfg, "server");
    let p = Process::new(cfg, &instance).await?;
    let mut ops = p.ops;
    let server = Server::start(
        p.cfg.clone(),
        p.queue.clone(),
        p.metrics.clone(),
        &mut ops,
        p.shutdown.clone(),
    )
    .await?;
    let mut line = format!("server=https://{}", server.internal_addr);
    let portal = if p.cfg.server.with_portal {
        let portal = Portal::start(
            p.cfg.clone(),
            p.queue,
            p.metrics,
            &mut ops,
            p.shutdown.clone(),
        )
        .await?;
        line.push_str(&format!(" portal=https://{}", portal.addr));
        Some(portal)
    } else {
        None
    };
    let ops = serve_until_signal(&p.cfg, ops, p.shutdown, &stop, line).await?;
    server.join().await;
    if let Some(portal) = portal {
        portal.join().await;
    }
    ops.join().await;
    tracing::info!(
        role = "server",
        "stopped gracefully: in-flight requests finished"
    );
    Ok(())
}

/// The portal alone (its own process or host): pages and the portal JSON API.
pub async fn portal(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let (_guard, instance) = logging(&cfg, "portal");
    let p = Process::new(cfg, &instance).await?;
    let mut ops = p.ops;
    let portal = Portal::start(
        p.cfg.clone(),
        p.queue,
        p.metrics,
        &mut ops,
        p.shutdown.clone(),
    )
    .await?;
    let line = format!("portal=https://{}", portal.addr);
    let ops = serve_until_signal(&p.cfg, ops, p.shutdown, &stop, line).await?;
    portal.join().await;
    ops.join().await;
    tracing::info!(
        role = "portal",
        "stopped gracefully: in-flight requests finished"
    );
    Ok(())
}

/// Everything in one process: bootstrap, main server, proxy and workers sharing one ops listener.
pub async fn up(mut cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let report = msgrelay_admin::init(
        &cfg,
        &msgrelay_admin::InitOptions {
            domains: Vec::new(),
            demo: true,
        },
    )
    .await?;
    let (_guard, instance) = logging(&cfg, "up");
    for line in &report.created {
        tracing::info!(created = %line, "bootstrap");
    }
    let metrics = Arc::new(Metrics::for_instance(&instance));
    let mut ops = OpsState::new(metrics.clone());
    let shutdown = CancellationToken::new();

    let queue = connect_queue(&cfg, &metrics, &mut ops).await?;
    let server = Server::start(
        Arc::new(cfg.clone()),
        queue.clone(),
        metrics.clone(),
        &mut ops,
        shutdown.clone(),
    )
    .await?;
    // The proxy and the workers reach the main server where it actually listens.
    let internal_url = format!("https://localhost:{}", server.internal_addr.port());
    cfg.proxy.main_server_urls = vec![internal_url.clone()];
    cfg.worker.main_server_urls = vec![internal_url];
    let cfg = Arc::new(cfg);
    let proxy = Proxy::start(
        cfg.clone(),
        queue.clone(),
        metrics.clone(),
        &mut ops,
        shutdown.clone(),
    )
    .await?;
    let worker = Worker::start(
        cfg.clone(),
        queue.clone(),
        metrics.clone(),
        shutdown.clone(),
    )
    .await?;
    let portal = Portal::start(cfg.clone(), queue, metrics, &mut ops, shutdown.clone()).await?;

    let domain = cfg
        .proxy
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let proxy_url = format!("https://{domain}:{}", proxy.addr.port());
    let bundle = cfg.path("clients").join("demo");
    println!();
    println!("msgrelay is running (Ctrl-C stops it)");
    println!("  proxy (mutual TLS):  {proxy_url}/api/v1/messages");
    println!(
        "  portal (HTTPS):      https://localhost:{}/  (JSON API under /api/v1)",
        portal.addr.port()
    );
    println!(
        "  internal API:        https://localhost:{}",
        server.internal_addr.port()
    );
    println!(
        "  credentials:         {}  (admin and demo passwords)",
        report.credentials_file.display()
    );
    println!(
        "  portal CA:           {}",
        cfg.path("pki").join("internal-ca.crt").display()
    );
    println!();
    println!("send a message:");
    println!("  {}", client_command(&proxy_url, &bundle));
    println!();
    let line = format!(
        "proxy=https://{} server=https://{} portal=https://{}",
        proxy.addr, server.internal_addr, portal.addr
    );
    let ops = serve_until_signal(&cfg, ops, shutdown, &stop, line).await?;
    proxy.join().await;
    worker.join().await;
    server.join().await;
    portal.join().await;
    ops.join().await;
    tracing::info!(
        role = "up",
        "stopped gracefully: in-flight requests finished, no lease held"
    );
    Ok(())
}

/// The Python client command for this platform: PowerShell on Windows (`py`, backslash paths,
/// single-quoted), a POSIX shell elsewhere.
fn client_command(proxy_url: &str, bundle: &std::path::Path) -> String {
    let (py, script, quote): (&str, &str, fn(&std::path::Path) -> String) = if cfg!(windows) {
        ("py", r"clients\python\send_message.py", |p| {
            format!("'{}'", p.display().to_string().replace('\'', "''"))
        })
    } else {
        ("python3", "clients/python/send_message.py", |p| {
            format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
        })
    };
    format!(
        "{py} {script} --url {proxy_url} --cert {} --key {} --ca {} --sender +15551234567 --body \"hello\"",
        quote(&bundle.join("client.crt")),
        quote(&bundle.join("client.key")),
        quote(&bundle.join("ca.crt")),
    )
}
