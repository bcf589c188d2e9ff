//! JSON views of stored messages; decryption happens here, only after the caller's access to the
//! row was established by the query that fetched it.

use chrono::{TimeZone, Utc};
use msgrelay_store::MessageRow;
use serde::Serialize;

use msgrelay_at_rest::AtRestKeys;

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A message in a list (no content).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageSummary {
    pub id: String,
    pub client_id: String,
    pub status: String,
    pub created_at: String,
    pub queued_at: String,
    pub delivered_at: Option<String>,
    pub attempt_count: u32,
}

impl From<&MessageRow> for MessageSummary {
    fn from(r: &MessageRow) -> Self {
        Self {
            id: r.id.to_string(),
            client_id: r.client_id.to_string(),
            status: r.status.to_string(),
            created_at: rfc3339(r.created_at_ms),
            queued_at: rfc3339(r.queued_at_ms),
            delivered_at: r.delivered_at_ms.map(rfc3339),
            attempt_count: r.attempt_count,
        }
    }
}

/// One message with its decrypted content (`null` until delivered).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub sender_number: Option<String>,
    pub message_body: Option<String>,
}

impl MessageDetail {
    /// Decrypts the row's columns. A row that fails to decrypt is reported, not hidden.
    pub fn decrypt(
        row: &MessageRow,
        keys: &AtRestKeys,
    ) -> Result<Self, msgrelay_at_rest::AtRestError> {
        let open = |col: &str,
                    data: &Option<Vec<u8>>|
         -> Result<Option<String>, msgrelay_at_rest::AtRestError> {
            match (data, &row.key_id) {
                (Some(d), Some(k)) => keys.decrypt(k, &row.id, col, d).map(Some),
                _ => Ok(None),
            }
        };
        Ok(Self {
            summary: MessageSummary::from(row),
            sender_number: open("encrypted_sender", &row.encrypted_sender)?,
            message_body: open("encrypted_body", &row.encrypted_body)?,
        })
    }
}

/// A page of the message list (for the API documentation; the handler builds the same shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MessagePage)]
pub struct MessagePageDoc {
    pub items: Vec<MessageSummary>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}
