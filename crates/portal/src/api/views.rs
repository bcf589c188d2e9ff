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

/// How many characters of the body a list row shows.
pub const PREVIEW_CHARS: usize = 80;

/// The first [`PREVIEW_CHARS`] characters of a body, with `…` when it was cut.
pub fn preview(body: &str) -> String {
    match body.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// The decrypted sender and body of a row (`None` until delivered).
fn open_columns(
    row: &MessageRow,
    keys: &AtRestKeys,
) -> Result<(Option<String>, Option<String>), msgrelay_at_rest::AtRestError> {
    let open = |col: &str,
                data: &Option<Vec<u8>>|
     -> Result<Option<String>, msgrelay_at_rest::AtRestError> {
        match (data, &row.key_id) {
            (Some(d), Some(k)) => keys.decrypt(k, &row.id, col, d).map(Some),
            _ => Ok(None),
        }
    };
    Ok((
        open("encrypted_sender", &row.encrypted_sender)?,
        open("encrypted_body", &row.encrypted_body)?,
    ))
}

/// A message in a list: its sender and the start of its body, decrypted only for the rows of
/// the page asked for (`null` until delivered, or when the row cannot be decrypted, which is logged).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageListItem {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub sender_number: Option<String>,
    /// The first 80 characters of the body, `…` when cut.
    pub body_preview: Option<String>,
}

impl MessageListItem {
    pub fn decrypt(row: &MessageRow, keys: &AtRestKeys) -> Self {
        let (sender_number, body) = open_columns(row, keys).unwrap_or_else(|e| {
            tracing::error!(message_id = %row.id, error = %e, "listed message cannot be decrypted (missing or wrong at-rest key?)");
            (None, None)
        });
        Self {
            summary: MessageSummary::from(row),
            sender_number,
            body_preview: body.as_deref().map(preview),
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
        let (sender_number, message_body) = open_columns(row, keys)?;
        Ok(Self {
            summary: MessageSummary::from(row),
            sender_number,
            message_body,
        })
    }
}

/// A page of the message list (for the API documentation; the handler builds the same shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MessagePage)]
pub struct MessagePageDoc {
    pub items: Vec<MessageListItem>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

#[cfg(test)]
mod tests {
    use super::preview;

    #[test]
    fn preview_cuts_at_80_characters_not_bytes() {
        assert_eq!(preview("short"), "short");
        let exact = "é".repeat(80);
        assert_eq!(preview(&exact), exact);
        let long = format!("{}tail", "é".repeat(80));
        assert_eq!(preview(&long), format!("{}…", "é".repeat(80)));
    }
}
