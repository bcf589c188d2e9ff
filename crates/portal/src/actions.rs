//! What the HTML pages and the JSON API both do, written once: the client list with certificate
//! status, where a new bundle goes, "retry now" for failed messages, and the login limiter's
//! bookkeeping. Each returns the error of its backend; `crate::http` maps it for pages and for
//! the API.

use std::path::PathBuf;

use msgrelay_core::{ClientId, ClientStatus, MessageId};
use msgrelay_ops::metrics::Reason;
use msgrelay_queue::QueueError;
use msgrelay_store::StoreError;

use crate::layout::When;
use crate::PortalState;

/// Largest login body read (JSON or form); a username is at most 64 bytes, a password not huge.
pub const MAX_LOGIN_BODY: usize = 16 * 1024;

/// A certificate as the client list shows it.
pub struct CertView {
    pub serial: String,
    pub fingerprint: String,
    pub not_after: When,
    pub status: &'static str,
}

/// A client with its certificates, for the clients page and `GET /api/v1/admin/clients`.
pub struct ClientView {
    pub client_id: String,
    pub owner: String,
    pub domain: String,
    pub active: bool,
    pub created: When,
    pub certs: Vec<CertView>,
}

/// Every client with its certificates and their status as the proxy enforces it.
pub async fn client_views(s: &PortalState) -> Result<Vec<ClientView>, StoreError> {
    let now = msgrelay_core::now_ms();
    let certs = s.store.list_certificates(None).await?;
    Ok(s.store
        .list_clients(None)
        .await?
        .into_iter()
        .map(|c| ClientView {
            certs: certs
                .iter()
                .filter(|x| x.client_id == c.client_id)
                .map(|x| CertView {
                    serial: x.serial_hex.clone(),
                    fingerprint: x.fingerprint.clone(),
                    not_after: When::from_ms(x.not_after_ms),
                    status: ClientStatus::of_certificate(
                        x.revoked_at_ms.is_some(),
                        x.not_after_ms,
                        c.active,
                        now,
                    )
                    .as_str(),
                })
                .collect(),
            client_id: c.client_id.to_string(),
            owner: c.owner_username,
            domain: c.domain,
            active: c.active,
            created: When::from_ms(c.created_at_ms),
        })
        .collect())
}

/// A new, timestamped directory for a client's certificate bundle: `(path, stamp)`.
pub fn bundle_dir(s: &PortalState, id: &ClientId) -> (PathBuf, String) {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    (s.cfg.path("clients").join(id.as_str()).join(&stamp), stamp)
}

/// Why "retry now" failed.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

/// Puts failed messages back into the queue and marks them queued in the store.
pub async fn retry_failed(
    s: &PortalState,
    ids: Option<Vec<MessageId>>,
) -> Result<(u64, u64), RetryError> {
    let targets: Vec<MessageId> = match &ids {
        Some(ids) => ids.clone(),
        None => s
            .queue
            .list_failed(100_000)
            .await?
            .into_iter()
            .map(|f| f.id)
            .collect(),
    };
    let requeued = s.queue.retry_failed(ids.as_deref()).await?;
    let rows = s.store.requeue_failed(&targets).await?;
    Ok((requeued, rows))
}

/// The client address the login limiter counts against.
pub fn client_ip(peer: Option<&msgrelay_tls::PeerInfo>) -> std::net::IpAddr {
    peer.map(|p| p.remote_addr.ip())
        .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
}

/// Logs and counts a refusal by the login limiter.
pub fn note_refused(s: &PortalState, username: &str, refused: &msgrelay_auth::Refused) {
    tracing::warn!(user_tag = %msgrelay_auth::username_tag(username), limit = refused.limit, retry_after_secs = refused.retry_after_secs(), "login refused: too many failures");
    s.metrics
        .logins
        .get_or_create(&Reason {
            reason: "throttled",
        })
        .inc();
}

/// The largest `older_than_days` a purge accepts (a hundred years).
pub const MAX_PURGE_DAYS: u32 = 36_500;

/// The shortest retention purge: `server.max_payload_age_days`. A message delivered longer ago
/// than that was accepted longer ago too, so its sealed payload, replayed from the queue or a
/// backup, is refused as too old; a shorter purge would let such a replay bring the purged
/// message back as a new row. `Err` says why and what to change.
pub fn check_purge_days(s: &PortalState, days: u32) -> Result<(), String> {
    let floor = s.cfg.server.max_payload_age_days;
    if days > MAX_PURGE_DAYS {
        return Err(format!("must be at most {MAX_PURGE_DAYS}"));
    }
    if days < floor {
        return Err(format!(
            "must be at least server.max_payload_age_days ({floor}): a replayed payload of a \
             message purged sooner would be stored again; lower server.max_payload_age_days to \
             purge sooner"
        ));
    }
    Ok(())
}
