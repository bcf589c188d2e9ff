//! The one configuration struct: defaults in code, then a TOML file, then `MSGRELAY_<SECTION>__<KEY>`
//! environment variables; validated once at start-up with errors that name the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::redis_url::RedisUrl;

/// A configuration problem; `key` is the dotted key (e.g. `worker.lease_secs`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration key `{key}`: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Base directory for relative paths (PKI, keys, SQLite files, logs).
    pub data_dir: PathBuf,
    /// Name of this process in logs and in the `instance` label of its metrics; empty:
    /// `<hostname>-<role>`.
    pub instance: String,
    pub proxy: ProxyConfig,
    pub server: ServerConfig,
    pub portal: PortalConfig,
    pub ops: OpsConfig,
    /// Timeouts and connection caps of every TLS listener (proxy, internal API, portal).
    pub http: HttpConfig,
    pub queue: QueueConfig,
    pub database: DatabaseConfig,
    pub worker: WorkerConfig,
    pub validation: ValidationConfig,
    pub log: LogConfig,
    pub backup: BackupConfig,
}

/// `msgrelay backup` / `restore` of a MySQL/MariaDB store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// `mariadb-dump`/`mysqldump` to run; empty: the first of them found on PATH. The restore
    /// client (`mariadb`/`mysql`) is looked for next to it first.
    pub mysqldump_path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub listen: String,
    pub domains: Vec<String>,
    /// One main server; see [`ProxyConfig::main_servers`].
    pub main_server_url: String,
    /// Several main servers (any of them can serve any call); wins over `main_server_url`.
    pub main_server_urls: Vec<String>,
    pub max_body_bytes: usize,
    /// CRL and client registry reload period.
    pub revocation_refresh_secs: u64,
    /// How long past the CRL's next-update the proxy still trusts it before failing closed.
    pub crl_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Payloads accepted longer ago than this are refused as replays (a purged message or a
    /// queue restored from an old backup must not come back).
    pub max_payload_age_days: u32,
    /// Whether `msgrelay server` also serves the portal on `portal.listen`; false when the
    /// portal runs as its own role (`msgrelay portal`), e.g. on another host.
    pub with_portal: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    pub listen: String,
    /// Idle lifetime of a portal session.
    pub session_ttl_secs: u64,
    /// Absolute lifetime of a portal session, however busy.
    pub session_absolute_secs: u64,
    /// Failed logins allowed for one username from one client address per window.
    pub login_max_failures_per_user: u32,
    /// Failed logins allowed from one client address (any username) per window.
    pub login_max_failures_per_ip: u32,
    /// The login limiter's counting window; a refusal lasts until its window ends.
    pub login_window_secs: u64,
    /// Most entries the login limiter remembers (bounds its memory; ~100 bytes each).
    pub login_limiter_capacity: usize,
    /// Password hashes (argon2, ~19 MiB each) allowed to run at once; 0 = one per CPU core.
    pub password_hash_concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    pub listen: String,
}

/// What a peer may hold before it has proven anything; applies to each TLS listener separately.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub tls_handshake_timeout_secs: u64,
    /// Until a request's headers are complete (also the first request after the handshake).
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    /// Until the response is ready; 503 after it.
    pub request_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout_secs: u64,
    pub h2_keepalive_interval_secs: u64,
    pub h2_keepalive_timeout_secs: u64,
    pub h2_max_concurrent_streams: u32,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// An unread request body is drained up to this size after an early answer.
    pub drain_max_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    Sqlite,
    Redis,
}

/// `Debug` hides the password in `redis_url`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub backend: QueueBackend,
    /// The embedded queue's SQLite file (relative to `data_dir`).
    pub sqlite_path: PathBuf,
    /// One server, Sentinel or Cluster; the forms are in [`crate::redis_url`].
    pub redis_url: String,
    /// PEM CA certificate(s) that verify the Redis servers (and sentinels) of a `rediss…` URL;
    /// empty = the operating system's trust store.
    pub redis_ca_file: PathBuf,
    /// The proxy answers 202 only once this many replicas have the entry (`WAIT`); 0 = as soon as
    /// the primary has it.
    pub min_replicas_ack: u32,
    /// How long the proxy waits for `min_replicas_ack` replicas before answering 503.
    pub replica_ack_timeout_ms: u64,
    /// Streams the Redis queue is split into (hash-tagged keys, one cluster slot each); 1 keeps
    /// the original key names on one server.
    pub partitions: u32,
    pub key_prefix: String,
    pub allow_non_durable_redis: bool,
    /// High-water mark: with this many undelivered messages (ready, in flight, awaiting a retry)
    /// the proxy answers 503 `saturated` instead of enqueuing. 0 = no limit.
    pub max_depth: u64,
}

/// `Debug` hides the password in `url` (`mysql://user:***@host/db`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

/// The store's location, derived from `database.url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// An embedded SQLite file; the path goes to `SqliteConnectOptions::filename` as it is.
    Sqlite(PathBuf),
    /// A MySQL/MariaDB server URL (`mysql://` or `mariadb://`); may hold a password.
    Server(String),
}

impl DatabaseLocation {
    /// `sqlite://PATH` or `sqlite:PATH` (an optional `?...` suffix is ignored: the store always
    /// opens read-write and creates the file) becomes a path, resolved against `base` when
    /// relative; anything else is a server URL.
    pub fn from_setting(url: &str, base: &Path) -> Self {
        match url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Some(rest) => {
                let path = Path::new(rest.split_once('?').map_or(rest, |(p, _)| p));
                Self::Sqlite(if path_is_absolute(path) {
                    path.to_path_buf()
                } else {
                    base.join(path)
                })
            }
            None => Self::Server(url.to_owned()),
        }
    }
}

/// `Path::is_absolute`, plus Windows forms (`C:\`, `C:/`, `\\server\share`) recognised on every
/// platform, so a configuration written for Windows means the same when checked elsewhere.
fn path_is_absolute(p: &Path) -> bool {
    let s = p.to_string_lossy();
    let b = s.as_bytes();
    p.is_absolute()
        || s.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'\\' || b[2] == b'/'))
}

impl std::fmt::Debug for DatabaseLocation {
    // A server URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Self::Server(_) => f.write_str("Server(***)"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Stable name of this worker process; its tasks consume as `<name>-<n>`, so a restarted worker
    /// takes back its own unfinished leases at once. Empty: `<hostname>-<ops port>`.
    pub name: String,
    /// One main server; see [`WorkerConfig::main_servers`].
    pub main_server_url: String,
    /// Several main servers, spread over and failed over between; wins over `main_server_url`.
    pub main_server_urls: Vec<String>,
    pub concurrency: usize,
    pub lease_secs: u64,
    pub delivery_timeout_secs: u64,
    pub retry_interval_secs: u64,
    pub max_attempts: u32,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    pub allow_alphanumeric_senders: bool,
    pub max_message_chars: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `msgrelay=debug,info`.
    pub level: String,
    /// Directory for the daily-rotating log files (relative to `data_dir`); empty disables file logs.
    pub dir: PathBuf,
    /// How many `msgrelay.log.*` files to keep, today's included (the oldest are deleted at
    /// start-up and at each daily rotation); 0 keeps all.
    pub keep_days: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            instance: String::new(),
            proxy: ProxyConfig::default(),
            server: ServerConfig::default(),
            portal: PortalConfig::default(),
            ops: OpsConfig::default(),
            http: HttpConfig::default(),
            queue: QueueConfig::default(),
            database: DatabaseConfig::default(),
            worker: WorkerConfig::default(),
            validation: ValidationConfig::default(),
            log: LogConfig::default(),
            backup: BackupConfig::default(),
        }
    }
}

/// `./data` (embedded defaults, next to where `msgrelay up` runs); on Windows, where services
/// start in System32, `%ProgramData%\msgrelay`.
fn default_data_dir() -> PathBuf {
    if cfg!(windows) {
        if let Some(program_data) = std::env::var_os("ProgramData").filter(|v| !v.is_empty()) {
            return PathBuf::from(program_data).join("msgrelay");
        }
    }
    PathBuf::from("data")
}

/// Where proxies and workers find the main server when nothing else is configured.
pub const DEFAULT_MAIN_SERVER_URL: &str = "https://localhost:9443";

impl ProxyConfig {
    /// The main servers this proxy registers messages with and fetches keys from: the list when
    /// set, else the single URL.
    pub fn main_servers(&self) -> Vec<String> {
        effective_servers(&self.main_server_url, &self.main_server_urls)
    }
}

impl WorkerConfig {
    /// The main servers this worker delivers to: the list when set, else the single URL.
    pub fn main_servers(&self) -> Vec<String> {
        effective_servers(&self.main_server_url, &self.main_server_urls)
    }
}

fn effective_servers(one: &str, list: &[String]) -> Vec<String> {
    if list.is_empty() {
        vec![one.to_owned()]
    } else {
        list.to_vec()
    }
}

/// Both keys set (the single one away from its default) is refused: which one the operator meant
/// cannot be guessed. Every URL must be https:// (mutual TLS), none listed twice.
fn validate_servers(section: &str, one: &str, list: &[String]) -> Result<(), ConfigError> {
    let single = format!("{section}.main_server_url");
    let multi = format!("{section}.main_server_urls");
    if !list.is_empty() && one != DEFAULT_MAIN_SERVER_URL {
        return Err(ConfigError::new(
            &multi,
            format!("set either {single} or {multi}, not both (remove {single})"),
        ));
    }
    if list.len() > 64 {
        return Err(ConfigError::new(&multi, "at most 64 main servers"));
    }
    let (key, urls) = if list.is_empty() {
        (single, vec![one.to_owned()])
    } else {
        (multi, list.to_vec())
    };
    for (i, url) in urls.iter().enumerate() {
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            return Err(ConfigError::new(
                &key,
                format!("'{url}' must be an https:// URL (mutual TLS)"),
            ));
        }
        let norm = url.trim_end_matches('/');
        if urls[..i].iter().any(|u| u.trim_end_matches('/') == norm) {
            return Err(ConfigError::new(&key, format!("'{url}' is listed twice")));
        }
    }
    Ok(())
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            domains: vec!["localhost".into()],
            main_server_url: DEFAULT_MAIN_SERVER_URL.into(),
            main_server_urls: Vec::new(),
            max_body_bytes: 65536,
            revocation_refresh_secs: 5,
            crl_grace_secs: 3600,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9443".into(),
            max_payload_age_days: 30,
            with_portal: true,
        }
    }
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9444".into(),
            session_ttl_secs: 8 * 3600,
            session_absolute_secs: 12 * 3600,
            login_max_failures_per_user: 5,
            login_max_failures_per_ip: 100,
            login_window_secs: 15 * 60,
            login_limiter_capacity: 100_000,
            password_hash_concurrency: 0,
        }
    }
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9100".into(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            tls_handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            request_timeout_secs: 60,
            idle_timeout_secs: 60,
            h2_keepalive_interval_secs: 30,
            h2_keepalive_timeout_secs: 10,
            h2_max_concurrent_streams: 100,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            drain_max_bytes: 1024 * 1024,
        }
    }
}

/// One million undelivered messages: about 1 GB of Redis memory or SQLite disk at the typical
/// ~1 KB per queued message (sealed 200-character body plus stream/index overhead); see
/// docs/interface.md for sizing it to `maxmemory` or the disk.
pub const DEFAULT_MAX_DEPTH: u64 = 1_000_000;

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: QueueBackend::Sqlite,
            sqlite_path: PathBuf::from("queue.db"),
            redis_url: "redis://127.0.0.1:6379/0".into(),
            redis_ca_file: PathBuf::new(),
            min_replicas_ack: 0,
            replica_ack_timeout_ms: 500,
            partitions: 1,
            key_prefix: "msgrelay".into(),
            allow_non_durable_redis: false,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://msgrelay.db".into(),
            max_connections: 8,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            main_server_url: DEFAULT_MAIN_SERVER_URL.into(),
            main_server_urls: Vec::new(),
            concurrency: 4,
            lease_secs: 60,
            delivery_timeout_secs: 20,
            retry_interval_secs: 30,
            max_attempts: 0,
            batch_size: 100,
        }
    }
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            allow_alphanumeric_senders: false,
            max_message_chars: 4096,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            dir: PathBuf::from("logs"),
            keep_days: 30,
        }
    }
}

impl Config {
    /// Layers defaults, the optional TOML `file` and `MSGRELAY_*` variables; `data_dir` (a command-line
    /// flag) wins over all of them. The result is validated.
    pub fn load(file: Option<&Path>, data_dir: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, data_dir, env_provider("MSGRELAY_"))
    }

    fn load_with_env(
        file: Option<&Path>,
        data_dir: Option<&Path>,
        env: Env,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} not found", file.display()),
                ));
            }
            fig = fig.merge(Toml::file(file));
        }
        let mut cfg: Config = fig.merge(env).extract().map_err(figment_error)?;
        if let Some(dir) = data_dir {
            cfg.data_dir = dir.to_path_buf();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// A path from the configuration, resolved against `data_dir` when relative.
    pub fn path(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        if path_is_absolute(p) {
            p.to_path_buf()
        } else {
            self.data_dir.join(p)
        }
    }

    /// Where the store lives. A SQLite location is a *path* (relative ones resolved against
    /// `data_dir`), never a URL: a Windows path such as `C:\msgrelay\data\msgrelay.db` is not a
    /// valid URL and must reach SQLite byte for byte.
    pub fn database(&self) -> DatabaseLocation {
        DatabaseLocation::from_setting(&self.database.url, &self.data_dir)
    }

    /// Checks every value that can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("proxy.listen", &self.proxy.listen),
            ("server.listen", &self.server.listen),
            ("portal.listen", &self.portal.listen),
            ("ops.listen", &self.ops.listen),
        ] {
            value.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    key,
                    format!("'{value}' is not an address like 127.0.0.1:8443"),
                )
            })?;
        }
        let ops: SocketAddr = self.ops.listen.parse().expect("checked above");
        if !ops.ip().is_loopback() {
            return Err(ConfigError::new(
                "ops.listen",
                "the ops listener is plain HTTP and must bind a loopback address",
            ));
        }
        validate_servers(
            "proxy",
            &self.proxy.main_server_url,
            &self.proxy.main_server_urls,
        )?;
        validate_servers(
            "worker",
            &self.worker.main_server_url,
            &self.worker.main_server_urls,
        )?;
        if self.proxy.domains.is_empty() {
            return Err(ConfigError::new(
                "proxy.domains",
                "list at least one domain name",
            ));
        }
        if let Some(bad) = self
            .proxy
            .domains
            .iter()
            .find(|d| crate::DomainName::parse(d).is_err())
        {
            return Err(ConfigError::new(
                "proxy.domains",
                format!("'{bad}' is not a DNS name"),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.proxy.max_body_bytes) {
            return Err(ConfigError::new(
                "proxy.max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if !(1..=3650).contains(&self.server.max_payload_age_days) {
            return Err(ConfigError::new(
                "server.max_payload_age_days",
                "must be between 1 and 3650",
            ));
        }
        self.validate_durations()?;
        self.validate_http()?;
        let p = &self.portal;
        if !(1..=30 * 86_400).contains(&p.session_absolute_secs) {
            return Err(ConfigError::new(
                "portal.session_absolute_secs",
                "must be between 1 and 2592000 (30 days)",
            ));
        }
        if !(1..=1_000_000).contains(&p.login_max_failures_per_user) {
            return Err(ConfigError::new(
                "portal.login_max_failures_per_user",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=1_000_000).contains(&p.login_max_failures_per_ip) {
            return Err(ConfigError::new(
                "portal.login_max_failures_per_ip",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=86_400).contains(&p.login_window_secs) {
            return Err(ConfigError::new(
                "portal.login_window_secs",
                "must be between 1 and 86400",
            ));
        }
        if !(100..=10_000_000).contains(&p.login_limiter_capacity) {
            return Err(ConfigError::new(
                "portal.login_limiter_capacity",
                "must be between 100 and 10000000",
            ));
        }
        if p.password_hash_concurrency > 256 {
            return Err(ConfigError::new(
                "portal.password_hash_concurrency",
                "must be between 0 (one per core) and 256",
            ));
        }
        self.validate_queue()?;
        let prefix_ok = !self.queue.key_prefix.is_empty()
            && self.queue.key_prefix.len() <= 64
            && self
                .queue
                .key_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !prefix_ok {
            return Err(ConfigError::new(
                "queue.key_prefix",
                "must be 1-64 characters of letters, digits, '-', '_', '.', ':'",
            ));
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("mysql://")
            || self.database.url.starts_with("mariadb://"))
        {
            return Err(ConfigError::new(
                "database.url",
                "must start with sqlite:// or mysql://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::new(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.instance.len() > 64
            || !self
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::new(
                "instance",
                "must be at most 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let w = &self.worker;
        if w.name.len() > 64
            || !w
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::new(
                "worker.name",
                "must be at most 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if !(1..=1024).contains(&w.concurrency) {
            return Err(ConfigError::new(
                "worker.concurrency",
                "must be between 1 and 1024",
            ));
        }
        if !(1..=1000).contains(&w.batch_size) {
            return Err(ConfigError::new(
                "worker.batch_size",
                "must be between 1 and 1000",
            ));
        }
        if w.lease_secs <= w.delivery_timeout_secs {
            return Err(ConfigError::new(
                "worker.lease_secs",
                format!(
                    "must exceed worker.delivery_timeout_secs ({}), otherwise a slow delivery could be handed to a second worker",
                    w.delivery_timeout_secs
                ),
            ));
        }
        if !(1..=1_000_000).contains(&self.validation.max_message_chars) {
            return Err(ConfigError::new(
                "validation.max_message_chars",
                "must be between 1 and 1000000",
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for QueueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConfig")
            .field("backend", &self.backend)
            .field("sqlite_path", &self.sqlite_path)
            .field("redis_url", &redact_url_password(&self.redis_url))
            .field("redis_ca_file", &self.redis_ca_file)
            .field("key_prefix", &self.key_prefix)
            .field("allow_non_durable_redis", &self.allow_non_durable_redis)
            .field("max_depth", &self.max_depth)
            .field("min_replicas_ack", &self.min_replicas_ack)
            .field("replica_ack_timeout_ms", &self.replica_ack_timeout_ms)
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A URL with the password of its `user:password@` part replaced by `***`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

impl Config {
    /// The Redis keys are checked whatever the backend (a typo must not wait for the day the
    /// backend is switched), except that an unused URL is not parsed.
    fn validate_queue(&self) -> Result<(), ConfigError> {
        let q = &self.queue;
        let redis = q.backend == QueueBackend::Redis;
        if redis {
            let url = RedisUrl::parse(&q.redis_url)
                .map_err(|reason| ConfigError::new("queue.redis_url", reason))?;
            if !url.tls && !q.redis_ca_file.as_os_str().is_empty() {
                return Err(ConfigError::new(
                    "queue.redis_ca_file",
                    "is set but queue.redis_url does not use TLS (rediss://, rediss+sentinel:// or rediss+cluster://)",
                ));
            }
        }
        if q.min_replicas_ack > 16 {
            return Err(ConfigError::new(
                "queue.min_replicas_ack",
                "must be between 0 and 16",
            ));
        }
        if q.min_replicas_ack > 0 && !redis {
            return Err(ConfigError::new(
                "queue.min_replicas_ack",
                "needs queue.backend = \"redis\" (the embedded queue has no replicas); set it to 0",
            ));
        }
        if !(1..=256).contains(&q.partitions) {
            return Err(ConfigError::new(
                "queue.partitions",
                "must be between 1 and 256",
            ));
        }
        if q.partitions > 1 && !redis {
            return Err(ConfigError::new(
                "queue.partitions",
                "needs queue.backend = \"redis\" (the embedded queue is one table); set it to 1",
            ));
        }
        in_range(
            "queue.replica_ack_timeout_ms",
            q.replica_ack_timeout_ms,
            10,
            1000,
        )?;
        Ok(())
    }

    /// Every number that feeds time arithmetic is bounded here, so an absurd value stops start-up
    /// naming its key instead of overflowing an `Instant` or a timestamp later.
    fn validate_durations(&self) -> Result<(), ConfigError> {
        let w = &self.worker;
        for (key, value, lo, hi) in [
            (
                "proxy.revocation_refresh_secs",
                self.proxy.revocation_refresh_secs,
                1,
                DAY,
            ),
            (
                "proxy.crl_grace_secs",
                self.proxy.crl_grace_secs,
                0,
                30 * DAY,
            ),
            (
                "portal.session_ttl_secs",
                self.portal.session_ttl_secs,
                60,
                30 * DAY,
            ),
            ("worker.lease_secs", w.lease_secs, 2, DAY),
            (
                "worker.delivery_timeout_secs",
                w.delivery_timeout_secs,
                1,
                HOUR,
            ),
            ("worker.retry_interval_secs", w.retry_interval_secs, 1, DAY),
        ] {
            in_range(key, value, lo, hi)?;
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        for (key, value, lo, hi) in [
            (
                "http.tls_handshake_timeout_secs",
                h.tls_handshake_timeout_secs,
                1,
                HOUR,
            ),
            (
                "http.header_read_timeout_secs",
                h.header_read_timeout_secs,
                1,
                HOUR,
            ),
            (
                "http.body_read_timeout_secs",
                h.body_read_timeout_secs,
                1,
                HOUR,
            ),
            ("http.request_timeout_secs", h.request_timeout_secs, 1, HOUR),
            ("http.idle_timeout_secs", h.idle_timeout_secs, 1, DAY),
            (
                "http.h2_keepalive_interval_secs",
                h.h2_keepalive_interval_secs,
                1,
                HOUR,
            ),
            (
                "http.h2_keepalive_timeout_secs",
                h.h2_keepalive_timeout_secs,
                1,
                HOUR,
            ),
            (
                "http.h2_max_concurrent_streams",
                u64::from(h.h2_max_concurrent_streams),
                1,
                10_000,
            ),
            (
                "http.max_connections",
                h.max_connections as u64,
                1,
                1_000_000,
            ),
            (
                "http.max_connections_per_ip",
                h.max_connections_per_ip as u64,
                1,
                h.max_connections as u64,
            ),
            (
                "http.drain_max_bytes",
                h.drain_max_bytes,
                0,
                64 * 1024 * 1024,
            ),
        ] {
            in_range(key, value, lo, hi)?;
        }
        Ok(())
    }
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

fn in_range(key: &str, value: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{value} is out of range; must be between {lo} and {hi}"),
        ))
    }
}

/// Only `<prefix>DATA_DIR`, `<prefix>INSTANCE` and `<prefix><SECTION>__<KEY>` are configuration; other MSGRELAY_*
/// variables (the clients' MSGRELAY_URL, test settings) must not trip the unknown-key check.
/// The filter sees the key as written (`DATA_DIR`), so the comparison ignores case.
fn env_provider(prefix: &str) -> Env {
    Env::prefixed(prefix)
        .filter(|k| {
            k.as_str().contains("__")
                || k.as_str().eq_ignore_ascii_case("data_dir")
                || k.as_str().eq_ignore_ascii_case("instance")
        })
        .split("__")
}

/// Turns figment's error into one naming the dotted key (`worker.concurrency`).
fn figment_error(e: figment::Error) -> ConfigError {
    let key = match (&e.kind, e.path.is_empty()) {
        (figment::error::Kind::UnknownField(f, _), true) => f.clone(),
        (_, true) => "config".to_owned(),
        _ => e.path.join("."),
    };
    let reason = match &e.kind {
        figment::error::Kind::UnknownField(..) => {
            "unknown key (check the spelling against docs/interface.md)".to_owned()
        }
        kind => kind.to_string(),
    };
    ConfigError { key, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("msgrelay-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let r = Config::load_with_env(Some(&file), None, Env::prefixed("MSGRELAY_TEST_NONE_"));
        std::fs::remove_dir_all(&dir).ok();
        r
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure must return figment's own Error
    fn data_dir_comes_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MSGRELAY_DATA_DIR", "/srv/relay");
            let cfg = Config::load(None, None).unwrap();
            assert_eq!(cfg.data_dir, PathBuf::from("/srv/relay"));
            Ok(())
        });
    }

    #[test]
    fn queue_ha_keys_are_checked_and_the_password_never_printed() {
        for (toml, key) in [
            (
                "[queue]\nbackend = \"redis\"\nredis_url = \"redis+sentinel://u:hunter2@s1,s2\"\n",
                "queue.redis_url",
            ),
            (
                "[queue]\nbackend = \"redis\"\nredis_url = \"rediss://h#insecure\"\n",
                "queue.redis_url",
            ),
            (
                "[queue]\nbackend = \"redis\"\nredis_ca_file = \"ca.pem\"\n",
                "queue.redis_ca_file",
            ),
            (
                "[queue]\nbackend = \"redis\"\nmin_replicas_ack = 17\n",
                "queue.min_replicas_ack",
            ),
            ("[queue]\nmin_replicas_ack = 1\n", "queue.min_replicas_ack"),
            (
                "[queue]\nbackend = \"redis\"\nreplica_ack_timeout_ms = 5\n",
                "queue.replica_ack_timeout_ms",
            ),
            (
                "[queue]\nbackend = \"redis\"\nreplica_ack_timeout_ms = 1001\n",
                "queue.replica_ack_timeout_ms",
            ),
            (
                "[queue]\nbackend = \"redis\"\npartitions = 0\n",
                "queue.partitions",
            ),
            (
                "[queue]\nbackend = \"redis\"\npartitions = 257\n",
                "queue.partitions",
            ),
            ("[queue]\npartitions = 4\n", "queue.partitions"),
        ] {
            let e = load(toml).unwrap_err();
            assert_eq!(e.key, key, "{toml}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let cfg = load(
            "[queue]\nbackend = \"redis\"\nredis_url = \"rediss+cluster://relay:hunter2@n1:7000,n2:7001\"\n\
             redis_ca_file = \"redis-ca.pem\"\nmin_replicas_ack = 1\nreplica_ack_timeout_ms = 250\n",
        )
        .unwrap();
        assert_eq!(cfg.queue.min_replicas_ack, 1);
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("relay:***@n1:7000"), "{dbg}");
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = load("[worker]\nconcurrency = \"many\"\n").unwrap_err();
        assert_eq!(e.key, "worker.concurrency");
        let e = load("[worker]\nlease_secs = 10\ndelivery_timeout_secs = 20\n").unwrap_err();
        assert_eq!(e.key, "worker.lease_secs");
        let e = load("[queue]\nbakend = \"redis\"\n").unwrap_err();
        assert_eq!(e.key, "queue.bakend");
        let e = load("[ops]\nlisten = \"0.0.0.0:9100\"\n").unwrap_err();
        assert_eq!(e.key, "ops.listen");
        let e = load("[queue]\nbackend = \"kafka\"\n").unwrap_err();
        assert_eq!(e.key, "queue.backend");
    }

    #[test]
    fn main_server_lists() {
        let cfg = load("[worker]\nmain_server_urls = [\"https://a:9443\", \"https://b:9443/\"]\n")
            .unwrap();
        assert_eq!(
            cfg.worker.main_servers(),
            ["https://a:9443", "https://b:9443/"]
        );
        assert_eq!(cfg.proxy.main_servers(), [DEFAULT_MAIN_SERVER_URL]);
        let cfg = load("[proxy]\nmain_server_url = \"https://m:9443\"\n").unwrap();
        assert_eq!(cfg.proxy.main_servers(), ["https://m:9443"]);
        for (toml, key, says) in [
            (
                "[worker]\nmain_server_url = \"https://a:1\"\nmain_server_urls = [\"https://b:1\"]\n",
                "worker.main_server_urls",
                "not both",
            ),
            (
                "[proxy]\nmain_server_urls = [\"https://a:1\", \"https://a:1/\"]\n",
                "proxy.main_server_urls",
                "twice",
            ),
            (
                "[proxy]\nmain_server_urls = [\"http://a:1\"]\n",
                "proxy.main_server_urls",
                "https://",
            ),
            (
                "[worker]\nmain_server_url = \"http://a:1\"\n",
                "worker.main_server_url",
                "https://",
            ),
        ] {
            let e = load(toml).unwrap_err();
            assert_eq!(e.key, key, "{toml}: {e}");
            assert!(e.reason.contains(says), "{toml}: {e}");
        }
    }

    #[test]
    fn out_of_range_durations_name_the_key() {
        for (toml, key) in [
            (
                "[proxy]\ncrl_grace_secs = 9999999999\n",
                "proxy.crl_grace_secs",
            ),
            (
                "[proxy]\nrevocation_refresh_secs = 0\n",
                "proxy.revocation_refresh_secs",
            ),
            (
                "[portal]\nsession_ttl_secs = 9999999999\n",
                "portal.session_ttl_secs",
            ),
            (
                "[worker]\nretry_interval_secs = 9999999999\n",
                "worker.retry_interval_secs",
            ),
            ("[worker]\nlease_secs = 9999999999\n", "worker.lease_secs"),
            ("[http]\nidle_timeout_secs = 0\n", "http.idle_timeout_secs"),
            (
                "[http]\ntls_handshake_timeout_secs = 9999999999\n",
                "http.tls_handshake_timeout_secs",
            ),
            (
                "[http]\nmax_connections = 10\nmax_connections_per_ip = 11\n",
                "http.max_connections_per_ip",
            ),
            (
                "[http]\nh2_max_concurrent_streams = 0\n",
                "http.h2_max_concurrent_streams",
            ),
        ] {
            let e = load(toml).unwrap_err();
            assert_eq!(e.key, key, "{toml}: {e}");
        }
        let ok =
            load("[proxy]\ncrl_grace_secs = 0\n[http]\nheader_read_timeout_secs = 1\n").unwrap();
        assert_eq!(ok.http.header_read_timeout_secs, 1);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure must return figment's own Error
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[queue]\nkey_prefix = \"file\"\n")?;
            jail.set_env("MSGRELAY_QUEUE__KEY_PREFIX", "env");
            jail.set_env("MSGRELAY_WORKER__CONCURRENCY", "7");
            jail.set_env("MSGRELAY_URL", "https://client-side-setting");
            jail.set_env("MSGRELAY_INSTANCE", "relay-3.worker");
            let cfg = Config::load(Some(Path::new("c.toml")), None).unwrap();
            assert_eq!(cfg.instance, "relay-3.worker");
            assert_eq!(cfg.queue.key_prefix, "env");
            assert_eq!(cfg.worker.concurrency, 7);
            Ok(())
        });
    }

    #[test]
    fn database_password_is_redacted_in_debug() {
        let mut cfg = Config::default();
        cfg.database.url =
            "mysql://relay:s3cr%40t:pw@db.example:3306/msgrelay?ssl-mode=required".into();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr") && !shown.contains("pw@"), "{shown}");
        assert!(
            shown.contains("mysql://relay:***@db.example:3306/msgrelay?ssl-mode=required"),
            "{shown}"
        );
        assert_eq!(
            redact_url_password("mysql://root@h/db"),
            "mysql://root@h/db"
        );
        assert_eq!(
            redact_url_password("sqlite://msgrelay.db"),
            "sqlite://msgrelay.db"
        );
    }

    #[test]
    fn portal_limits_are_bounded() {
        for (toml, key) in [
            (
                "[portal]\nsession_absolute_secs = 0\n",
                "portal.session_absolute_secs",
            ),
            (
                "[portal]\nlogin_max_failures_per_user = 0\n",
                "portal.login_max_failures_per_user",
            ),
            (
                "[portal]\nlogin_window_secs = 99999999999\n",
                "portal.login_window_secs",
            ),
            (
                "[portal]\nlogin_limiter_capacity = 1\n",
                "portal.login_limiter_capacity",
            ),
            (
                "[portal]\npassword_hash_concurrency = 100000\n",
                "portal.password_hash_concurrency",
            ),
        ] {
            assert_eq!(load(toml).unwrap_err().key, key, "{toml}");
        }
    }

    #[test]
    fn sqlite_path_is_resolved_against_data_dir() {
        let cfg = Config {
            data_dir: PathBuf::from("/srv/relay"),
            ..Config::default()
        };
        assert_eq!(
            cfg.database(),
            DatabaseLocation::Sqlite(PathBuf::from("/srv/relay/msgrelay.db"))
        );
    }

    #[test]
    fn windows_sqlite_paths_stay_paths() {
        let base = Path::new(r"C:\ProgramData\msgrelay");
        for (setting, want) in [
            (
                r"sqlite://C:\msgrelay\data\msgrelay.db",
                r"C:\msgrelay\data\msgrelay.db",
            ),
            (
                "sqlite:C:/msgrelay/data/msgrelay.db",
                "C:/msgrelay/data/msgrelay.db",
            ),
            (
                r"sqlite://\\fileserver\share\relay db#1.db?mode=rwc",
                r"\\fileserver\share\relay db#1.db",
            ),
            (
                "sqlite:///srv/relay/msgrelay.db?mode=rwc",
                "/srv/relay/msgrelay.db",
            ),
        ] {
            assert_eq!(
                DatabaseLocation::from_setting(setting, base),
                DatabaseLocation::Sqlite(PathBuf::from(want)),
                "{setting}"
            );
        }
        // Relative: joined to the data directory with the platform's separator, never parsed as a host.
        assert_eq!(
            DatabaseLocation::from_setting("sqlite://msgrelay.db", base),
            DatabaseLocation::Sqlite(base.join("msgrelay.db"))
        );
        assert_eq!(
            DatabaseLocation::from_setting("mysql://u:secret@db:3306/m", base),
            DatabaseLocation::Server("mysql://u:secret@db:3306/m".into())
        );
        assert!(!format!(
            "{:?}",
            DatabaseLocation::Server("mysql://u:secret@db/m".into())
        )
        .contains("secret"));
    }
}
