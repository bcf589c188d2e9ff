//! The connection to the queue's Redis, for the three forms of `queue.redis_url`:
//! - one server: a redis-rs `ConnectionManager` (reconnects by itself);
//! - Sentinel: a `ConnectionManager` to the primary that the sentinels name (redis-rs
//!   `SentinelClient`, which also checks with `ROLE` that the server it names is a primary). When a
//!   call fails in a way that says the primary is gone or demoted (connection refused or dropped,
//!   I/O timeout, `READONLY`, `MASTERDOWN`, `LOADING`), the sentinels are asked again in the
//!   background and, if they name another server, later calls go there. The failed call itself
//!   still fails (`Unavailable`): the proxy answers 503 and the client retries with its
//!   Idempotency-Key; a worker leases again after its pause;
//! - Cluster: redis-rs cluster-async, which follows slot moves and replica promotions itself.
//!
//! TLS (`rediss…`) uses rustls with the ring provider; the servers are verified against
//! `queue.redis_ca_file` or, without it, the operating system's trust store. Credentials come from the
//! URL and are never logged.

use crate::QueueError;
use msgrelay_core::{RedisTopology, RedisUrl};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, TlsCertificates, TlsMode, Value,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What a connection needs besides the URL.
#[derive(Clone)]
pub(crate) struct LinkOptions {
    /// PEM of `queue.redis_ca_file` (None = the system trust store).
    pub ca_pem: Option<Vec<u8>>,
    /// Per-call response timeout of the underlying connection.
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
}

/// A connection the queue's commands and scripts run on; cheap to clone (shared sockets).
#[derive(Clone)]
pub(crate) enum Con {
    Direct(ConnectionManager),
    Sentinel(SentinelCon),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Con {
    /// Connects as `url` says; an authentication failure is a configuration error naming the key.
    pub(crate) async fn connect(url: &RedisUrl, opts: &LinkOptions) -> Result<Con, QueueError> {
        if url.tls {
            // Our rustls configs use ring; redis-rs builds its own with the process default.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let r = match &url.topology {
            RedisTopology::Single => connect_single(url, opts).await,
            RedisTopology::Sentinel { master } => SentinelCon::connect(url, master, opts)
                .await
                .map(Con::Sentinel),
            RedisTopology::Cluster => connect_cluster(url, opts).await.map(Con::Cluster),
        };
        let mut con = r.map_err(|e| startup_error(url, e))?;
        // A server that wants a password answers the first command NOAUTH, not the connect.
        let pong: RedisResult<Value> = bounded(
            opts.response_timeout,
            redis::cmd("PING").query_async(&mut con),
        )
        .await;
        pong.map_err(|e| startup_error(url, e))?;
        Ok(con)
    }

    /// A handle for one call: on Sentinel, to the primary of the latest re-resolution.
    pub(crate) fn handle(&self) -> Con {
        match self {
            Con::Sentinel(s) => Con::Sentinel(s.fresh()),
            other => other.clone(),
        }
    }

    /// Whether this is a Redis Cluster connection (keys must then share a slot per script).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Con::Cluster(_))
    }
}

/// Maps a failed first connection to an error that names the key and never the password.
fn startup_error(url: &RedisUrl, e: RedisError) -> QueueError {
    let auth = e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
        || e.to_string().contains("WRONGPASS")
        || e.to_string().contains("NOAUTH");
    if auth {
        let who = match (&url.username, &url.password) {
            (_, None) => "no password was given but the server requires one".to_owned(),
            (Some(u), Some(_)) => format!("user '{u}' with the password from the URL"),
            (None, Some(_)) => "the password from the URL (default user)".to_owned(),
        };
        QueueError::Config(format!(
            "queue.redis_url: Redis refused the credentials ({who}): {}",
            e.kind_text()
        ))
    } else if e.kind() == ErrorKind::InvalidClientConfig {
        QueueError::Config(format!("queue.redis_url: {e}"))
    } else {
        QueueError::Unavailable(format!("redis: {e}"))
    }
}

trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for RedisError {
    /// The server's error code and text (no command arguments, so no password).
    fn kind_text(&self) -> String {
        match (self.code(), self.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_owned(),
            _ => self.category().to_owned(),
        }
    }
}

fn tls_certs(opts: &LinkOptions) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: opts.ca_pem.clone(),
    }
}

fn node_addr(url: &RedisUrl, host: &str, port: u16) -> ConnectionAddr {
    if url.tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }
}

fn node_info(url: &RedisUrl, host: &str, port: u16) -> RedisResult<redis::ConnectionInfo> {
    let mut settings = redis::RedisConnectionInfo::default().set_db(url.db);
    if let Some(u) = &url.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &url.password {
        settings = settings.set_password(p);
    }
    Ok(node_addr(url, host, port)
        .into_connection_info()?
        .set_redis_settings(settings))
}

fn client_for(
    url: &RedisUrl,
    info: redis::ConnectionInfo,
    opts: &LinkOptions,
) -> RedisResult<Client> {
    if url.tls && opts.ca_pem.is_some() {
        Client::build_with_tls(info, tls_certs(opts))
    } else {
        Client::open(info)
    }
}

fn manager_config(opts: &LinkOptions) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(opts.connect_timeout))
        .set_response_timeout(Some(opts.response_timeout))
        .set_number_of_retries(2)
}

async fn manager(client: Client, opts: &LinkOptions) -> RedisResult<ConnectionManager> {
    bounded(
        opts.connect_timeout * 3,
        ConnectionManager::new_with_config(client, manager_config(opts)),
    )
    .await
}

/// Bounds a connection attempt (a silent host must not hang start-up or a re-resolution).
async fn bounded<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {} ms", limit.as_millis()),
        ))),
    }
}

async fn connect_single(url: &RedisUrl, opts: &LinkOptions) -> RedisResult<Con> {
    let (host, port) = &url.hosts[0];
    let client = client_for(url, node_info(url, host, *port)?, opts)?;
    Ok(Con::Direct(manager(client, opts).await?))
}

async fn connect_cluster(
    url: &RedisUrl,
    opts: &LinkOptions,
) -> RedisResult<redis::cluster_async::ClusterConnection> {
    let nodes = url
        .hosts
        .iter()
        .map(|(h, p)| node_info(url, h, *p))
        .collect::<RedisResult<Vec<_>>>()?;
    let mut b = redis::cluster::ClusterClientBuilder::new(nodes)
        .connection_timeout(opts.connect_timeout)
        .response_timeout(opts.response_timeout)
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(400);
    if let Some(u) = &url.username {
        b = b.username(u);
    }
    if let Some(p) = &url.password {
        b = b.password(p);
    }
    if url.tls {
        b = b.tls(TlsMode::Secure);
        if opts.ca_pem.is_some() {
            b = b.certs(tls_certs(opts));
        }
    }
    let client = b.build()?;
    bounded(opts.connect_timeout * 3, client.get_async_connection()).await
}

/// The current primary named by the sentinels, re-resolved when it stops answering as one.
#[derive(Clone)]
pub(crate) struct SentinelCon {
    con: ConnectionManager,
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    /// The connection to the current primary and that primary's address.
    current: RwLock<(ConnectionManager, String)>,
    sentinel: tokio::sync::Mutex<SentinelClient>,
    resolving: AtomicBool,
    opts: LinkOptions,
}

impl SentinelCon {
    async fn connect(url: &RedisUrl, master: &str, opts: &LinkOptions) -> RedisResult<Self> {
        // Shorter than the caller's own bound, so a silent primary fails here (and triggers a
        // re-resolution) rather than being cut off from outside.
        let opts = &LinkOptions {
            response_timeout: opts.response_timeout * 4 / 5,
            ..opts.clone()
        };
        let mut sentinel = sentinel_client(url, master, opts, true)?;
        let client = match bounded(opts.connect_timeout * 3, sentinel.async_get_client()).await {
            Ok(c) => c,
            // Sentinels often run without a password while the data servers have one: then
            // only the servers get the URL's credentials.
            Err(e) if url.password.is_some() && is_auth_refusal(&e) => {
                sentinel = sentinel_client(url, master, opts, false)?;
                bounded(opts.connect_timeout * 3, sentinel.async_get_client()).await?
            }
            Err(e) => return Err(e),
        };
        let addr = addr_text(&client);
        let con = manager(client, opts).await?;
        tracing::info!(primary = %addr, master = %master, "redis: connected to the primary named by the sentinels");
        Ok(Self {
            con: con.clone(),
            shared: Arc::new(SentinelShared {
                current: RwLock::new((con, addr)),
                sentinel: tokio::sync::Mutex::new(sentinel),
                resolving: AtomicBool::new(false),
                opts: opts.clone(),
            }),
        })
    }

    /// A handle on the current primary (the one after the latest re-resolution).
    pub(crate) fn fresh(&self) -> Self {
        let con = self
            .shared
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone();
        Self {
            con,
            shared: self.shared.clone(),
        }
    }

    /// After a failed call: if the failure says the primary may have moved, asks the sentinels
    /// again (once at a time, in the background).
    fn observe(&self, failure: Failure<'_>) {
        if !failure.suggests_failover() {
            return;
        }
        if self.shared.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            shared.resolve().await;
            shared.resolving.store(false, Ordering::Release);
        });
    }
}

impl SentinelShared {
    async fn resolve(&self) {
        let limit = self.opts.connect_timeout * 3;
        let client = {
            let mut sentinel = self.sentinel.lock().await;
            match bounded(limit, sentinel.async_get_client()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e.kind_text(), "redis: the sentinels name no reachable primary yet");
                    // Let the next failed call ask again after a short pause.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return;
                }
            }
        };
        let addr = addr_text(&client);
        let same = self.current.read().unwrap_or_else(|p| p.into_inner()).1 == addr;
        if same {
            // The same server: its ConnectionManager reconnects by itself.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        match manager(client, &self.opts).await {
            Ok(con) => {
                tracing::warn!(primary = %addr, "redis: the sentinels name a new primary; switched to it");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (con, addr);
            }
            Err(e) => {
                tracing::warn!(primary = %addr, error = %e.kind_text(), "redis: cannot reach the new primary yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn is_auth_refusal(e: &RedisError) -> bool {
    let text = e.to_string();
    e.kind() == ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("without any password configured")
}

fn sentinel_client(
    url: &RedisUrl,
    master: &str,
    opts: &LinkOptions,
    credentials_to_sentinels: bool,
) -> RedisResult<SentinelClient> {
    let addrs = url.hosts.iter().map(|(h, p)| node_addr(url, h, *p));
    let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
        .set_client_to_redis_db(url.db);
    if let Some(u) = &url.username {
        b = b.set_client_to_redis_username(u);
        if credentials_to_sentinels {
            b = b.set_client_to_sentinel_username(u);
        }
    }
    if let Some(p) = &url.password {
        b = b.set_client_to_redis_password(p);
        if credentials_to_sentinels {
            b = b.set_client_to_sentinel_password(p);
        }
    }
    if url.tls {
        b = b
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if opts.ca_pem.is_some() {
            b = b
                .set_client_to_redis_certificates(tls_certs(opts))
                .set_client_to_sentinel_certificates(tls_certs(opts));
        }
    }
    b.build()
}

fn addr_text(client: &Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            format!("{h}:{p}")
        }
        other => format!("{other}"),
    }
}

/// A failed call, as seen by the Sentinel connection.
enum Failure<'a> {
    Client(&'a RedisError),
    Server(&'a redis::ServerError),
}

impl Failure<'_> {
    fn suggests_failover(&self) -> bool {
        let code = match self {
            Failure::Client(e) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                {
                    return true;
                }
                e.code().unwrap_or("")
            }
            Failure::Server(e) => e.code(),
        };
        matches!(code, "READONLY" | "MASTERDOWN" | "LOADING")
    }
}

fn observe_value(s: &SentinelCon, r: &RedisResult<Value>) {
    match r {
        Err(e) => s.observe(Failure::Client(e)),
        Ok(Value::ServerError(e)) => s.observe(Failure::Server(e)),
        Ok(_) => {}
    }
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Direct(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
            Con::Sentinel(s) => Box::pin(async move {
                let r = s.con.req_packed_command(cmd).await;
                observe_value(s, &r);
                r
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Con::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Con::Sentinel(s) => Box::pin(async move {
                let r = s.con.req_packed_commands(pipeline, offset, count).await;
                match &r {
                    Err(e) => s.observe(Failure::Client(e)),
                    Ok(values) => {
                        if let Some(Value::ServerError(e)) =
                            values.iter().find(|v| matches!(v, Value::ServerError(_)))
                        {
                            s.observe(Failure::Server(e));
                        }
                    }
                }
                r
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Direct(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
            Con::Sentinel(s) => s.con.get_db(),
        }
    }
}
