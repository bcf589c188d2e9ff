//! Message pages: the filtered list (`/messages`, and `/admin/messages` for administrators) and
//! one message with its decrypted body (`/messages/{id}`). Ownership is part of every query; a
//! message of someone else's client is indistinguishable from a missing one (404).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use msgrelay_core::MessageId;
use msgrelay_store::MessageRow;

use crate::api::{ListQuery, MessageDetail, MessageListItem};
use crate::http::PageError;
use crate::http::{PageAdmin, PageUser};
use crate::layout::{Layout, When};
use crate::PortalState;

/// One row of the list.
pub struct Row {
    pub id: String,
    pub client_id: String,
    pub status: &'static str,
    pub created: When,
    pub delivered: Option<When>,
    pub attempts: u32,
    /// Sender and body preview (list rows only; escaped by the template).
    pub sender: Option<String>,
    pub preview: Option<String>,
}

impl Row {
    /// A list row with the sender and the start of the body, decrypted for this row only.
    fn listed(r: &MessageRow, keys: &msgrelay_at_rest::AtRestKeys) -> Self {
        let item = MessageListItem::decrypt(r, keys);
        Self {
            sender: item.sender_number,
            preview: item.body_preview,
            ..Self::from(r)
        }
    }
}

impl From<&MessageRow> for Row {
    fn from(r: &MessageRow) -> Self {
        Self {
            id: r.id.to_string(),
            client_id: r.client_id.to_string(),
            status: r.status.as_str(),
            created: When::from_ms(r.created_at_ms),
            delivered: When::opt(r.delivered_at_ms),
            attempts: r.attempt_count,
            sender: None,
            preview: None,
        }
    }
}

/// The filter as typed, to fill the form in again.
#[derive(Default)]
pub struct FilterValues {
    pub status: String,
    pub from: String,
    pub to: String,
    pub sender: String,
    pub client_id: String,
    pub per_page: String,
}

#[derive(Template)]
#[template(path = "messages.html")]
struct ListPage {
    layout: Layout,
    heading: &'static str,
    action: &'static str,
    f: FilterValues,
    statuses: [&'static str; 3],
    clients: Vec<String>,
    rows: Vec<Row>,
    total: u64,
    page: u32,
    pages: u64,
    prev_url: Option<String>,
    next_url: Option<String>,
    error: Option<String>,
    filtered: bool,
    all_clients: bool,
}

fn val(o: &Option<String>) -> String {
    o.clone().unwrap_or_default()
}

/// The list URL for another page with the same filter.
fn page_url(action: &str, q: &ListQuery, page: u32) -> String {
    let pairs: Vec<(&str, String)> = [
        ("status", &q.status),
        ("from", &q.from),
        ("to", &q.to),
        ("sender", &q.sender),
        ("client_id", &q.client_id),
        ("per_page", &q.per_page),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| (k, v.to_owned()))
    })
    .chain(std::iter::once(("page", page.to_string())))
    .collect();
    format!(
        "{action}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

async fn list(
    s: &PortalState,
    u: &PageUser,
    q: ListQuery,
    all: bool,
) -> Result<Response, PageError> {
    let (heading, action, active) = if all {
        ("All messages", "/admin/messages", "all-messages")
    } else if u.is_admin() {
        ("Messages (all clients)", "/messages", "messages")
    } else {
        ("My messages", "/messages", "messages")
    };
    let clients = s
        .store
        .list_clients((!u.is_admin()).then_some(u.user.id))
        .await?
        .into_iter()
        .map(|c| c.client_id.to_string())
        .collect();
    let f = FilterValues {
        status: val(&q.status),
        from: val(&q.from),
        to: val(&q.to),
        sender: val(&q.sender),
        client_id: val(&q.client_id),
        per_page: val(&q.per_page),
    };
    let filtered = [&f.status, &f.from, &f.to, &f.sender, &f.client_id]
        .iter()
        .any(|v| !v.trim().is_empty());
    let mut page = ListPage {
        layout: Layout::for_user(heading, active, u),
        heading,
        action,
        f,
        statuses: ["queued", "delivered", "failed"],
        clients,
        rows: Vec::new(),
        total: 0,
        page: 1,
        pages: 1,
        prev_url: None,
        next_url: None,
        error: None,
        filtered,
        all_clients: u.is_admin(),
    };
    let status = match q.to_filter(s, &u.caller()) {
        Err(p) => {
            page.error = Some(p.detail.clone());
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Ok(filter) => {
            let result = s.store.list_messages(&filter).await?;
            page.rows = result
                .items
                .iter()
                .map(|r| Row::listed(r, &s.at_rest))
                .collect();
            page.total = result.total;
            page.page = result.page;
            page.pages = result.total.div_ceil(u64::from(result.per_page)).max(1);
            page.prev_url = (result.page > 1).then(|| page_url(action, &q, result.page - 1));
            page.next_url = (u64::from(result.page) < page.pages)
                .then(|| page_url(action, &q, result.page + 1));
            StatusCode::OK
        }
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `/messages`: own messages (administrators: all).
pub async fn mine(
    State(s): State<PortalState>,
    u: PageUser,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    list(&s, &u, q, false).await
}

/// `/admin/messages`: every message.
pub async fn all(
    State(s): State<PortalState>,
    PageAdmin(u): PageAdmin,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    list(&s, &u, q, true).await
}

#[derive(Template)]
#[template(path = "message.html")]
struct DetailPage {
    layout: Layout,
    m: Row,
    queued: When,
    sender: Option<String>,
    body: Option<String>,
}

/// `/messages/{id}`: decrypted only after the ownership check inside the query.
pub async fn detail(
    State(s): State<PortalState>,
    u: PageUser,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = MessageId::parse(&id).map_err(|_| PageError::not_found())?;
    let row = s
        .store
        .get_message(&id, u.caller().visible_to())
        .await?
        .ok_or_else(PageError::not_found)?;
    let d = MessageDetail::decrypt(&row, &s.at_rest).map_err(|e| {
        tracing::error!(message_id = %id, error = %e, "stored message cannot be decrypted (missing or wrong at-rest key?)");
        PageError::page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "This message cannot be decrypted with the server's keys. The cause was logged.")
    })?;
    tracing::info!(message_id = %id, username = %u.user.username, "message viewed");
    let page = DetailPage {
        layout: Layout::for_user("Message", "messages", &u),
        m: Row::from(&row),
        queued: When::from_ms(row.queued_at_ms),
        sender: d.sender_number,
        body: d.message_body,
    };
    Ok(Html(page.render()?).into_response())
}
