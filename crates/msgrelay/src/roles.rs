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

/// What a process sets up before its roles start: config, metrics, the ops listener's state, the
/// shutdown token the roles drain on, and the process's one queue.
struct Process {
    cfg: Arc<Config>,
    metrics: Arc<Metrics>,
    ops: OpsState,
    shutdown: CancellationToken,
    queue: Queue,
}

/// A started role's `join()`: resolves once the role has drained after shutdown.
type Drain = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

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

    /// The one skeleton every process shares once its roles are started: serve the ops listener,
    /// print the ready line, wait for Ctrl-C, SIGTERM or `stop`, cancel, then wait for each role
    /// to drain (in the order given) and for the ops listener, and say so.
    async fn serve(
        self,
        stop: &CancellationToken,
        ready_line: String,
        roles: Vec<Drain>,
        name: &str,
        drained: &str,
    ) -> anyhow::Result<()> {
        let Process {
            cfg, ops, shutdown, ..
        } = self;
        ops.metrics.spawn_summary(SUMMARY_EVERY, shutdown.clone());
        let handle = OpsHandle::start(&cfg.ops.listen, ops, shutdown.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind ops.listen {}: {e}", cfg.ops.listen))?;
        // A stable line for scripts and tests (addresses are real even with port 0).
        println!("msgrelay ready: {ready_line} ops=http://{}", handle.addr);
        shutdown_signal(stop).await;
        tracing::info!("shutting down: finishing in-flight work");
        shutdown.cancel();
        for role in roles {
            role.await;
        }
        handle.join().await;
        tracing::info!(role = name, "stopped gracefully: {drained}");
        Ok(())
    }
}

pub async fn proxy(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let (_guard, instance) = logging(&cfg, "proxy");
    let mut p = Process::new(cfg, &instance).await?;
    let proxy = Proxy::start(
        p.cfg.clone(),
        p.queue.clone(),
        p.metrics.clone(),
        &mut p.ops,
        p.shutdown.clone(),
    )
    .await?;
    let line = format!("proxy=https://{}", proxy.addr);
    let roles: Vec<Drain> = vec![Box::pin(proxy.join())];
    p.serve(&stop, line, roles, "proxy", "in-flight requests finished")
        .await
}

pub async fn worker(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    crate::purge_freed_memory_at_once();
    let (_guard, instance) = logging(&cfg, "worker");
    let p = Process::new(cfg, &instance).await?;
    let worker = Worker::start(
        p.cfg.clone(),
        p.queue.clone(),
        p.metrics.clone(),
        p.shutdown.clone(),
    )
    .await?;
    let roles: Vec<Drain> = vec![Box::pin(worker.join())];
    let drained = "leased batches finished, no lease held";
    p.serve(&stop, "worker=running".into(), roles, "worker", drained)
        .await
}

/// The main server; unless `server.with_portal` is false, also the portal.
pub async fn server(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let (_guard, instance) = logging(&cfg, "server");
    let mut p = Process::new(cfg, &instance).await?;
    let server = Server::start(
        p.cfg.clone(),
        p.queue.monitor(),
        p.metrics.clone(),
        &mut p.ops,
        p.shutdown.clone(),
    )
    .await?;
    let mut line = format!("server=https://{}", server.internal_addr);
    let mut roles: Vec<Drain> = vec![Box::pin(server.join())];
    if p.cfg.server.with_portal {
        let portal = start_portal(&mut p).await?;
        line.push_str(&format!(" portal=https://{}", portal.addr));
        roles.push(Box::pin(portal.join()));
    }
    p.serve(&stop, line, roles, "server", "in-flight requests finished")
        .await
}

/// The portal alone (its own process or host): pages and the portal JSON API.
pub async fn portal(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let (_guard, instance) = logging(&cfg, "portal");
    let mut p = Process::new(cfg, &instance).await?;
    let portal = start_portal(&mut p).await?;
    let line = format!("portal=https://{}", portal.addr);
    let roles: Vec<Drain> = vec![Box::pin(portal.join())];
    p.serve(&stop, line, roles, "portal", "in-flight requests finished")
        .await
}

async fn start_portal(p: &mut Process) -> anyhow::Result<Portal> {
    Ok(Portal::start(
        p.cfg.clone(),
        p.queue.monitor(),
        p.metrics.clone(),
        &mut p.ops,
        p.shutdown.clone(),
    )
    .await?)
}

/// Everything in one process: bootstrap, main server, proxy and workers sharing one ops listener.
pub async fn up(cfg: Config, stop: CancellationToken) -> anyhow::Result<()> {
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
    let mut p = Process::new(cfg, &instance).await?;
    let server = Server::start(
        p.cfg.clone(),
        p.queue.monitor(),
        p.metrics.clone(),
        &mut p.ops,
        p.shutdown.clone(),
    )
    .await?;
    // The proxy and the workers reach the main server where it actually listens.
    let internal_url = format!("https://localhost:{}", server.internal_addr.port());
    let mut cfg = (*p.cfg).clone();
    cfg.proxy.main_server_urls = vec![internal_url.clone()];
    cfg.worker.main_server_urls = vec![internal_url];
    p.cfg = Arc::new(cfg);
    let cfg = p.cfg.clone();
    let proxy = Proxy::start(
        cfg.clone(),
        p.queue.clone(),
        p.metrics.clone(),
        &mut p.ops,
        p.shutdown.clone(),
    )
    .await?;
    let worker = Worker::start(
        cfg.clone(),
        p.queue.clone(),
        p.metrics.clone(),
        p.shutdown.clone(),
    )
    .await?;
    let portal = start_portal(&mut p).await?;

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
    let roles: Vec<Drain> = vec![
        Box::pin(proxy.join()),
        Box::pin(worker.join()),
        Box::pin(server.join()),
        Box::pin(portal.join()),
    ];
    let drained = "in-flight requests finished, no lease held";
    p.serve(&stop, line, roles, "up", drained).await
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
