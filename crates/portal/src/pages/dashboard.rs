//! `/admin`: messages per status, queue depth, and a chart of the last 24 hours drawn on the
//! server as inline SVG (no chart library, no script).

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use msgrelay_core::now_ms;
use msgrelay_queue::QueueStats;

use crate::http::PageAdmin;
use crate::http::PageError;
use crate::layout::{Layout, When};
use crate::PortalState;

const HOURS: usize = 24;
const HOUR_MS: i64 = 3_600_000;
/// Stacking order, bottom up.
const SERIES: [&str; 3] = ["delivered", "queued", "failed"];

/// One hour of the chart.
pub struct HourBucket {
    pub start: When,
    pub label: String,
    pub counts: [i64; 3],
}

impl HourBucket {
    pub fn total(&self) -> i64 {
        self.counts.iter().sum()
    }
}

/// A rectangle of the stacked bar chart, in SVG user units.
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub series: &'static str,
    pub title: String,
}

/// An axis label.
pub struct Tick {
    pub x: i64,
    pub y: i64,
    pub text: String,
}

pub struct Chart {
    pub width: i64,
    pub height: i64,
    pub rects: Vec<Rect>,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub baseline: i64,
    pub left: i64,
    pub right: i64,
}

/// Buckets the last 24 hours (the current hour last) from `(hour index, status, count)` rows.
pub fn buckets(rows: &[(i64, String, i64)], now: i64) -> Vec<HourBucket> {
    let current = now.div_euclid(HOUR_MS);
    (0..HOURS as i64)
        .map(|i| {
            let h = current - (HOURS as i64 - 1) + i;
            let mut counts = [0i64; 3];
            for (hour, status, n) in rows {
                if *hour == h {
                    if let Some(k) = SERIES.iter().position(|s| s == status) {
                        counts[k] += n;
                    }
                }
            }
            let start = When::from_ms(h * HOUR_MS);
            let label = start.text.get(11..16).unwrap_or("").to_owned();
            HourBucket {
                start,
                label,
                counts,
            }
        })
        .collect()
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Lays the buckets out as a stacked bar chart.
pub fn chart(b: &[HourBucket]) -> Chart {
    let (width, height, left, right, top, bottom) = (760i64, 260i64, 48i64, 8i64, 10i64, 30i64);
    let plot_h = height - top - bottom;
    let max = b.iter().map(HourBucket::total).max().unwrap_or(0).max(1);
    // A round upper bound so the ticks are whole numbers.
    let step = [1i64, 2, 5]
        .iter()
        .flat_map(|m| (0..9).map(move |e| m * 10i64.pow(e)))
        .filter(|s| ceil_div(max, *s) <= 5)
        .min()
        .unwrap_or(1);
    let top_value = ceil_div(max, step) * step;
    let col = (width - left - right) / HOURS as i64;
    let y_of = |v: i64| top + plot_h - v * plot_h / top_value;
    let mut rects = Vec::new();
    for (i, bucket) in b.iter().enumerate() {
        let x = left + i as i64 * col + 2;
        let mut acc = 0;
        for (k, series) in SERIES.iter().enumerate() {
            let n = bucket.counts[k];
            if n == 0 {
                continue;
            }
            let (y0, y1) = (y_of(acc), y_of(acc + n));
            rects.push(Rect {
                x,
                y: y1,
                w: col - 4,
                h: (y0 - y1).max(1),
                series,
                title: format!("{} UTC: {n} {series}", bucket.label),
            });
            acc += n;
        }
    }
    let x_ticks = b
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(i, bk)| Tick {
            x: left + i as i64 * col + col / 2,
            y: height - 10,
            text: bk.label.clone(),
        })
        .collect();
    let y_ticks = (0..=top_value / step)
        .map(|k| Tick {
            x: left - 6,
            y: y_of(k * step) + 4,
            text: (k * step).to_string(),
        })
        .collect();
    Chart {
        width,
        height,
        rects,
        x_ticks,
        y_ticks,
        baseline: y_of(0),
        left,
        right: width - right,
    }
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    by_status: Vec<(&'static str, u64)>,
    queue: Option<QueueStats>,
    buckets: Vec<HourBucket>,
    chart: Chart,
    series: [&'static str; 3],
    last24: i64,
}

pub async fn page(
    State(s): State<PortalState>,
    PageAdmin(u): PageAdmin,
) -> Result<Response, PageError> {
    let by_status = s
        .store
        .count_messages_by_status()
        .await?
        .into_iter()
        .map(|(st, n)| (st.as_str(), n))
        .collect();
    let queue = match s.queue.stats().await {
        Ok(q) => Some(q),
        Err(e) => {
            tracing::warn!(error = %e, "queue statistics unavailable");
            None
        }
    };
    let now = now_ms();
    let rows = s
        .store
        .hourly_counts((now.div_euclid(HOUR_MS) - (HOURS as i64 - 1)) * HOUR_MS)
        .await?;
    let buckets = buckets(&rows, now);
    let chart = chart(&buckets);
    let last24 = buckets.iter().map(HourBucket::total).sum();
    let page = DashboardPage {
        layout: Layout::for_user("Dashboard", "dashboard", &u),
        by_status,
        queue,
        buckets,
        chart,
        series: SERIES,
        last24,
    };
    Ok(Html(page.render()?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_bars() {
        let now = 100 * HOUR_MS + 5;
        let rows = vec![
            (100, "delivered".to_owned(), 7),
            (100, "failed".to_owned(), 1),
            (90, "queued".to_owned(), 3),
            (50, "delivered".to_owned(), 99),
        ];
        let b = buckets(&rows, now);
        assert_eq!(b.len(), 24);
        assert_eq!(b[23].counts, [7, 0, 1]);
        assert_eq!(b[13].counts, [0, 3, 0]);
        assert_eq!(b.iter().map(HourBucket::total).sum::<i64>(), 11);
        let c = chart(&b);
        assert_eq!(c.rects.len(), 3);
        assert!(c
            .rects
            .iter()
            .all(|r| r.y >= 0 && r.y + r.h <= c.baseline && r.h > 0));
        let empty = chart(&buckets(&[], now));
        assert!(empty.rects.is_empty());
    }
}
