//! JSON shapes exchanged between roles over the internal API.

use serde::{Deserialize, Serialize};

use crate::{ClientId, MessageId};

/// Proxy → main server: messages that were durably queued (`POST /internal/messages/register`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub messages: Vec<RegisterItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterItem {
    pub id: MessageId,
    pub client_id: ClientId,
    /// When the proxy accepted the message (ms since epoch).
    pub accepted_at_ms: i64,
}

/// Worker → main server: sealed messages to store (`POST /internal/messages/deliver`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverRequest {
    pub messages: Vec<DeliverItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverItem {
    pub id: MessageId,
    pub client_id: ClientId,
    pub accepted_at_ms: i64,
    /// Delivery attempts so far, including this one.
    pub attempt_count: u32,
    /// The sealed payload exactly as the proxy queued it, base64 (standard alphabet).
    pub sealed: String,
}

/// Per-message outcome of a delivery batch. A batch answers 200 with one result per item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverResponse {
    pub results: Vec<DeliverResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverResult {
    pub id: MessageId,
    pub outcome: DeliverOutcome,
    /// Why a message was rejected (never contains message content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliverOutcome {
    /// Stored (or already stored): the worker acknowledges it.
    Stored,
    /// Permanently refused (cannot be opened, forged, re-attributed): the worker dead-letters it.
    Rejected,
    /// Not stored yet, through no fault of the payload (it names a sealing key the main server
    /// does not hold): the worker retries it later like a failed delivery.
    Retry,
}

/// `last_error` of a queue dead letter that the main server refused as not authentic (unreadable,
/// forged, re-attributed). Such entries stay in the queue for the operator but never become rows
/// in `messages`: their client_id is only what the queue entry claims.
pub const REJECTED_DEAD_LETTER: &str =
    "rejected by the main server (cannot be opened or attributed)";

/// One entry of the client registry the proxy caches (`GET /internal/clients`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// SHA-256 of the certificate DER, lowercase hex without separators.
    pub fingerprint: String,
    pub client_id: ClientId,
    pub domain: String,
    /// `active` is the only status the proxy accepts.
    pub status: crate::ClientStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistryResponse {
    pub clients: Vec<RegistryEntry>,
}

/// The main server's sealing public key (`GET /internal/sealing-key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealingKeyResponse {
    pub key_id: String,
    /// X25519 public key, base64.
    pub public_key: String,
    /// Key ids of the proxy sealing keys whose payloads the main server opens. A proxy whose own
    /// key id is not listed refuses to start (its messages would never be stored).
    #[serde(default)]
    pub trusted_proxy_key_ids: Vec<String>,
}
