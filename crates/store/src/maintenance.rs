//! Aggregates and upkeep for the admin console: row counts and sizes per table, messages per
//! hour and status, the purge preview, and `ANALYZE`.

use std::collections::BTreeMap;

use sqlx::{Executor, Row};

use crate::{Dialect, Store, StoreError};

/// The tables an administrator can see counts of (fixed names, never user input).
const TABLES: [&str; 6] = [
    "users",
    "clients",
    "client_certificates",
    "messages",
    "sessions",
    "api_tokens",
];

/// Rows and bytes (data + indexes, when the database reports it) of one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableStat {
    pub table: String,
    pub rows: i64,
    /// `null` where the database cannot tell.
    pub bytes: Option<i64>,
}

impl Store {
    /// Row count and size of every table.
    pub async fn table_stats(&self) -> Result<Vec<TableStat>, StoreError> {
        let sizes = self.table_sizes().await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "table sizes unavailable");
            BTreeMap::new()
        });
        let mut out = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let rows: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {t}"))
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            out.push(TableStat {
                table: t.to_owned(),
                rows,
                bytes: sizes.get(t).copied(),
            });
        }
        Ok(out)
    }

    async fn table_sizes(&self) -> Result<BTreeMap<String, i64>, sqlx::Error> {
        let rows = match self.dialect() {
            // dbstat lists tables and their indexes; indexes are attributed to their table below.
            Dialect::Sqlite => {
                sqlx::query(
                    "SELECT COALESCE(m.tbl_name, d.name) AS t, CAST(SUM(d.pgsize) AS INTEGER) AS b \
                     FROM dbstat d LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY t",
                )
                .fetch_all(&self.pool)
                .await?
            }
            Dialect::Mysql => {
                sqlx::query(
                    "SELECT CAST(TABLE_NAME AS CHAR) AS t, CAST(DATA_LENGTH + INDEX_LENGTH AS SIGNED) AS b \
                     FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("t")?, r.try_get::<i64, _>("b")?)))
            .collect()
    }

    /// Messages created since `since_ms`, counted per (hour index since the epoch, status).
    pub async fn hourly_counts(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let hour = match self.dialect() {
            Dialect::Sqlite => "created_at / 3600000",
            Dialect::Mysql => "created_at DIV 3600000",
        };
        let sql = format!("SELECT {hour} AS h, status, COUNT(*) AS n FROM messages WHERE created_at >= ? GROUP BY h, status");
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("h")?,
                    r.try_get::<String, _>("status")?,
                    r.try_get::<i64, _>("n")?,
                ))
            })
            .collect()
    }

    /// How many delivered messages a purge with this cut-off would delete.
    pub async fn count_delivered_before(&self, before_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM messages WHERE status = 'delivered' AND delivered_at < ?",
        )
        .bind(before_ms)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// Refreshes the query planner's statistics.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        match self.dialect() {
            Dialect::Sqlite => {
                self.pool.execute("ANALYZE").await?;
                self.pool.execute("PRAGMA optimize").await?;
            }
            Dialect::Mysql => {
                self.pool
                    .execute(format!("ANALYZE TABLE {}", TABLES.join(", ")).as_str())
                    .await?;
            }
        }
        tracing::info!("database statistics refreshed (ANALYZE)");
        Ok(())
    }
}
