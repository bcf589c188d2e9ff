//! Domain types, configuration and wire formats shared by every msgrelay role.
//! Values here are validated at construction (`parse`), so invalid data cannot exist past the edge.
//! This crate does no I/O besides reading the configuration file.

pub mod config;
pub mod deliver_batch;
pub mod domain;
pub mod redis_url;
pub mod servers;
pub mod wire;

pub use config::{Config, ConfigError, DatabaseLocation};
pub use domain::{
    ClientId, ClientStatus, DomainError, DomainName, MessageBody, MessageId, MessageStatus, Role,
    SenderNumber,
};
pub use redis_url::{RedisTopology, RedisUrl};
pub use servers::ServerList;

/// Milliseconds since the Unix epoch, the one timestamp representation used in queues and stores.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
