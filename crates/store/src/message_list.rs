//! Message reads for the portal: filtered pages, single messages, counts by status.

use crate::{corrupt, get_u32, Store, StoreError};
use msgrelay_core::{ClientId, MessageId, MessageStatus};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};
use std::fmt;

/// One stored message (ciphertexts only; the caller decrypts). `Debug` hides the ciphertexts.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: MessageId,
    pub client_id: ClientId,
    pub encrypted_body: Option<Vec<u8>>,
    pub encrypted_sender: Option<Vec<u8>>,
    pub key_id: Option<String>,
    pub status: MessageStatus,
    pub created_at_ms: i64,
    pub queued_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub attempt_count: u32,
}

impl fmt::Debug for MessageRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRow")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field(
                "encrypted_body",
                &self.encrypted_body.as_ref().map(|_| "***"),
            )
            .field(
                "encrypted_sender",
                &self.encrypted_sender.as_ref().map(|_| "***"),
            )
            .field("key_id", &self.key_id)
            .field("status", &self.status)
            .field("created_at_ms", &self.created_at_ms)
            .field("queued_at_ms", &self.queued_at_ms)
            .field("delivered_at_ms", &self.delivered_at_ms)
            .field("attempt_count", &self.attempt_count)
            .finish()
    }
}

/// Which messages to list. Time bounds apply to `created_at` and are inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFilter {
    /// `Some(user_id)`: only messages of clients that user owns. `None`: all (admin).
    pub visible_to: Option<i64>,
    pub status: Option<MessageStatus>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Exact keyed hash of the sender number (the caller computes it).
    pub sender_hash: Option<String>,
    pub client_id: Option<ClientId>,
    /// 1-based.
    pub page: u32,
    /// 1..=200.
    pub per_page: u32,
}

impl Default for MessageFilter {
    fn default() -> Self {
        Self {
            visible_to: None,
            status: None,
            from_ms: None,
            to_ms: None,
            sender_hash: None,
            client_id: None,
            page: 1,
            per_page: 50,
        }
    }
}

/// One page of messages, newest first, with the total number matching the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    pub items: Vec<MessageRow>,
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

const MESSAGE_COLUMNS: &str =
    "m.id, m.client_id, m.encrypted_body, m.encrypted_sender, m.key_id, m.status, \
     m.created_at, m.queued_at, m.delivered_at, m.attempt_count";
const VISIBLE: &str = "m.client_id IN (SELECT client_id FROM clients WHERE owner_user_id = ?)";

enum Arg {
    Int(i64),
    Text(String),
}

fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    args: &'q [Arg],
) -> Query<'q, Any, AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(s) => q.bind(s.as_str()),
        };
    }
    q
}

fn message_from_row(row: &AnyRow) -> Result<MessageRow, StoreError> {
    let id: String = row.try_get("id")?;
    let client: String = row.try_get("client_id")?;
    let status: String = row.try_get("status")?;
    Ok(MessageRow {
        id: MessageId::parse(&id).map_err(|_| corrupt(format!("bad message id {id:?}")))?,
        client_id: ClientId::parse(&client)
            .map_err(|_| corrupt(format!("bad client id {client:?}")))?,
        encrypted_body: row.try_get("encrypted_body")?,
        encrypted_sender: row.try_get("encrypted_sender")?,
        key_id: row.try_get("key_id")?,
        status: MessageStatus::parse(&status)
            .map_err(|_| corrupt(format!("bad status {status:?}")))?,
        created_at_ms: row.try_get("created_at")?,
        queued_at_ms: row.try_get("queued_at")?,
        delivered_at_ms: row.try_get("delivered_at")?,
        attempt_count: get_u32(row, "attempt_count")?,
    })
}

/// The WHERE clause (without the keyword; `1 = 1` when empty) and its arguments.
fn where_clause(f: &MessageFilter) -> (String, Vec<Arg>) {
    let mut conds: Vec<&str> = vec!["1 = 1"];
    let mut args = Vec::new();
    if let Some(user) = f.visible_to {
        conds.push(VISIBLE);
        args.push(Arg::Int(user));
    }
    if let Some(s) = f.status {
        conds.push("m.status = ?");
        args.push(Arg::Text(s.as_str().to_owned()));
    }
    if let Some(from) = f.from_ms {
        conds.push("m.created_at >= ?");
        args.push(Arg::Int(from));
    }
    if let Some(to) = f.to_ms {
        conds.push("m.created_at <= ?");
        args.push(Arg::Int(to));
    }
    if let Some(h) = &f.sender_hash {
        conds.push("m.sender_number_hashed = ?");
        args.push(Arg::Text(h.clone()));
    }
    if let Some(c) = &f.client_id {
        conds.push("m.client_id = ?");
        args.push(Arg::Text(c.as_str().to_owned()));
    }
    (conds.join(" AND "), args)
}

impl Store {
    /// A filtered page of messages, newest first, with the total count.
    pub async fn list_messages(&self, f: &MessageFilter) -> Result<MessagePage, StoreError> {
        if f.page == 0 {
            return Err(StoreError::invalid("page", "must be at least 1"));
        }
        if !(1..=200).contains(&f.per_page) {
            return Err(StoreError::invalid("per_page", "must be between 1 and 200"));
        }
        let (cond, args) = where_clause(f);
        let count_sql = format!("SELECT COUNT(*) FROM messages m WHERE {cond}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &args)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {cond} ORDER BY m.created_at DESC, m.id DESC LIMIT ? OFFSET ?");
        let offset = i64::from(f.page - 1) * i64::from(f.per_page);
        let rows = bind_all(sqlx::query(&sql), &args)
            .bind(i64::from(f.per_page))
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        Ok(MessagePage {
            items: rows
                .iter()
                .map(message_from_row)
                .collect::<Result<_, _>>()?,
            total: u64::try_from(total).unwrap_or(0),
            page: f.page,
            per_page: f.per_page,
        })
    }

    /// One message, if it exists and `visible_to` is `None` or owns its client (else `None`).
    pub async fn get_message(
        &self,
        id: &MessageId,
        visible_to: Option<i64>,
    ) -> Result<Option<MessageRow>, StoreError> {
        let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?");
        if visible_to.is_some() {
            sql.push_str(" AND ");
            sql.push_str(VISIBLE);
        }
        let mut q = sqlx::query(&sql).bind(id.to_string());
        if let Some(user) = visible_to {
            q = q.bind(user);
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// How many messages are in each status (every status listed, zero included).
    pub async fn count_messages_by_status(&self) -> Result<Vec<(MessageStatus, u64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM messages GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(MessageStatus, u64)> = [
            MessageStatus::Queued,
            MessageStatus::Delivered,
            MessageStatus::Failed,
        ]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
        for row in &rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            let status = MessageStatus::parse(&status)
                .map_err(|_| corrupt(format!("bad status {status:?}")))?;
            if let Some(slot) = out.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(out)
    }
}
