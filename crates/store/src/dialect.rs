//! The few places where SQLite and MySQL/MariaDB SQL differ. Everything else is shared.

use sqlx::migrate::Migrator;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/mysql");

/// Which SQL dialect the connected database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3 (embedded default).
    Sqlite,
    /// MySQL 8 or MariaDB 10.6+.
    Mysql,
}

/// Columns that `deliver_messages` must not overwrite once a row is delivered.
const KEEP_WHEN_DELIVERED: [&str; 5] = [
    "encrypted_body",
    "encrypted_sender",
    "sender_number_hashed",
    "key_id",
    "delivered_at",
];

impl Dialect {
    pub(crate) fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATIONS,
            Self::Mysql => &MYSQL_MIGRATIONS,
        }
    }

    /// Per-connection settings. SQLite's journal mode is persistent and set once in `connect`.
    /// MySQL runs at READ COMMITTED: writers lock the rows they touch first, so a plain read then
    /// sees their latest committed state, and no gap locks are taken (REPEATABLE READ deadlocked
    /// concurrent overlapping deliveries several times per batch in the contract test).
    pub(crate) fn connection_setup(self) -> &'static [&'static str] {
        match self {
            Self::Sqlite => &[
                "PRAGMA busy_timeout = 5000",
                "PRAGMA foreign_keys = ON",
                "PRAGMA synchronous = FULL",
            ],
            Self::Mysql => &["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"],
        }
    }

    /// Starts a transaction that will write. SQLite takes the write lock at once, so a
    /// read-then-write transaction waits on `busy_timeout` instead of failing with SQLITE_BUSY.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN IMMEDIATE",
            Self::Mysql => "BEGIN",
        }
    }

    /// `INSERT ... VALUES ...` that skips rows whose key exists; `rows_affected` counts inserts.
    pub(crate) fn insert_if_absent(self, table_and_columns: &str, values: &str) -> String {
        match self {
            Self::Sqlite => {
                format!("INSERT INTO {table_and_columns} VALUES {values} ON CONFLICT DO NOTHING")
            }
            // Not ON DUPLICATE KEY UPDATE: with CLIENT_FOUND_ROWS (set by sqlx) it counts matched rows.
            Self::Mysql => format!("INSERT IGNORE INTO {table_and_columns} VALUES {values}"),
        }
    }

    /// The conflict clause of the delivery upsert: delivered rows keep their ciphertexts and
    /// delivery time; attempt_count only grows; status becomes delivered.
    pub(crate) fn deliver_conflict_clause(self) -> String {
        match self {
            Self::Sqlite => {
                let mut sets: Vec<String> = KEEP_WHEN_DELIVERED
                    .iter()
                    .map(|c| format!("{c} = CASE WHEN messages.status = 'delivered' THEN messages.{c} ELSE excluded.{c} END"))
                    .collect();
                sets.push(
                    "attempt_count = MAX(messages.attempt_count, excluded.attempt_count)".into(),
                );
                sets.push("updated_at = excluded.updated_at".into());
                sets.push("status = 'delivered'".into());
                format!(" ON CONFLICT (id) DO UPDATE SET {}", sets.join(", "))
            }
            Self::Mysql => {
                // MySQL assigns left to right and later expressions see earlier results,
                // so `status` must come last. VALUES() because MariaDB lacks the row alias syntax.
                let mut sets: Vec<String> = KEEP_WHEN_DELIVERED
                    .iter()
                    .map(|c| format!("{c} = IF(status = 'delivered', {c}, VALUES({c}))"))
                    .collect();
                sets.push("attempt_count = GREATEST(attempt_count, VALUES(attempt_count))".into());
                sets.push("updated_at = VALUES(updated_at)".into());
                sets.push("status = 'delivered'".into());
                format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
        }
    }
}

/// `(?, ?, ?), (?, ?, ?)` for `rows` rows of `cols` columns.
pub(crate) fn value_rows(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    vec![one; rows].join(", ")
}

/// `?, ?, ?` for an `IN (...)` list.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_upsert_sets_status_last() {
        let c = Dialect::Mysql.deliver_conflict_clause();
        assert!(c.trim_end().ends_with("status = 'delivered'"));
        assert_eq!(value_rows(2, 2), "(?, ?), (?, ?)");
    }
}
