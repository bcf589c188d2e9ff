//! `/admin/maintenance`: table rows and sizes, queue depth, failed messages with "retry now",
//! retention purge of delivered messages (with a confirmation step) and `ANALYZE`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use msgrelay_core::wire::REJECTED_DEAD_LETTER;
use msgrelay_core::{now_ms, MessageId};
use msgrelay_queue::QueueStats;
use serde::Deserialize;

use msgrelay_store::TableStat;

use super::users::{outcome, Done, NoFields};
use crate::actions::check_purge_days;
use crate::actions::retry_failed;
use crate::http::{AdminForm, PageAdmin, PageError, PageUser};
use crate::layout::{done_notice, Layout, When};
use crate::PortalState;

const DAY_MS: i64 = 24 * 3600 * 1000;

pub struct FailedRow {
    pub id: String,
    /// `None` for a dead letter the main server refused unopened: the client id is only what the
    /// queue entry claims, so it is not shown as that client's message.
    pub client_id: Option<String>,
    pub attempts: u32,
    pub last_error: String,
    pub failed_at: When,
}

#[derive(Template)]
#[template(path = "admin/maintenance.html")]
struct MaintenancePage {
    layout: Layout,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<String>,
    tables: Vec<TableStat>,
    queue: Option<QueueStats>,
    failed: Vec<FailedRow>,
    /// A purge waiting for confirmation: (days, messages it would delete).
    confirm: Option<(u32, i64)>,
    /// The shortest purge allowed (`server.max_payload_age_days`).
    purge_floor: u32,
}

async fn render(
    s: &PortalState,
    u: &PageUser,
    notice: Option<&'static str>,
    error: Option<(StatusCode, String)>,
    confirm: Option<(u32, i64)>,
) -> Result<Response, PageError> {
    let tables = s.store.table_stats().await?;
    let (queue, failed) = match (s.queue.stats().await, s.queue.list_failed(200).await) {
        (Ok(q), Ok(f)) => (Some(q), f),
        (q, f) => {
            tracing::warn!(
                stats_ok = q.is_ok(),
                failed_ok = f.is_ok(),
                "queue unavailable for the maintenance page"
            );
            (q.ok(), f.unwrap_or_default())
        }
    };
    let failed = failed
        .into_iter()
        .map(|f| FailedRow {
            id: f.id.to_string(),
            client_id: (f.last_error != REJECTED_DEAD_LETTER).then(|| f.client_id.to_string()),
            attempts: f.attempts,
            last_error: f.last_error,
            failed_at: When::from_ms(f.failed_at_ms),
        })
        .collect();
    let status = error.as_ref().map(|e| e.0).unwrap_or(StatusCode::OK);
    let page = MaintenancePage {
        layout: Layout::for_user("Maintenance", "maintenance", u),
        csrf: u.csrf.clone(),
        notice,
        error: error.map(|e| e.1),
        tables,
        queue,
        failed,
        confirm,
        purge_floor: s.cfg.server.max_payload_age_days,
    };
    Ok((status, Html(page.render()?)).into_response())
}

pub async fn page(
    State(s): State<PortalState>,
    PageAdmin(u): PageAdmin,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    render(&s, &u, done_notice(q.done.as_deref()), None, None).await
}

#[derive(Deserialize)]
pub struct RetryForm {
    /// One message id, or empty for every failed message.
    id: Option<String>,
}

pub async fn retry(
    State(s): State<PortalState>,
    AdminForm(u, f): AdminForm<RetryForm>,
) -> Result<Response, PageError> {
    let r = async {
        let ids = match f.id.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
            Some(i) => Some(vec![MessageId::parse(i).map_err(|_| {
                PageError::page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid input",
                    "id: not a message id",
                )
            })?]),
            None => None,
        };
        let (requeued, rows) = retry_failed(&s, ids).await?;
        tracing::info!(admin = %u.user.username, requeued, rows, "failed messages retried");
        Ok(())
    }
    .await;
    outcome(r, "retried", "/admin/maintenance", |st, e| {
        render(&s, &u, None, Some((st, e)), None)
    })
    .await
}

#[derive(Deserialize)]
pub struct PurgeForm {
    days: String,
    /// `yes` once the administrator has seen how many messages go.
    confirm: Option<String>,
}

pub fn parse_days(s: &PortalState, d: &str) -> Result<u32, PageError> {
    let invalid = |detail: String| {
        PageError::page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid input",
            format!("days: {detail}"),
        )
    };
    let days = d
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|d| (1..=36_500).contains(d))
        .ok_or_else(|| invalid("must be a whole number of days, at least 1".into()))?;
    check_purge_days(s, days).map_err(invalid)?;
    Ok(days)
}

pub async fn purge(
    State(s): State<PortalState>,
    AdminForm(u, f): AdminForm<PurgeForm>,
) -> Result<Response, PageError> {
    let days = match parse_days(&s, &f.days) {
        Ok(d) => d,
        Err(PageError::Page { status, detail, .. }) => {
            return render(&s, &u, None, Some((status, detail)), None).await
        }
        Err(e) => return Err(e),
    };
    let before = now_ms() - i64::from(days) * DAY_MS;
    if f.confirm.as_deref() != Some("yes") {
        let n = s.store.count_delivered_before(before).await?;
        return render(&s, &u, None, None, Some((days, n))).await;
    }
    let r = async {
        let n = s.store.purge_delivered_before(before).await?;
        tracing::info!(admin = %u.user.username, days, deleted = n, "delivered messages purged");
        Ok(())
    }
    .await;
    outcome(r, "purged", "/admin/maintenance", |st, e| {
        render(&s, &u, None, Some((st, e)), None)
    })
    .await
}

pub async fn analyze(
    State(s): State<PortalState>,
    AdminForm(u, NoFields {}): AdminForm<NoFields>,
) -> Result<Response, PageError> {
    let r = s.store.analyze().await.map_err(PageError::from);
    outcome(r, "analyzed", "/admin/maintenance", |st, e| {
        render(&s, &u, None, Some((st, e)), None)
    })
    .await
}
