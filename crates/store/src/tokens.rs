//! API tokens for `Authorization: Bearer`. The raw token (`mrt_…`) is returned once; the
//! database keeps only its SHA-256.

use crate::secrets::{random_token, token_hash};
use crate::users::{user_from_row, USER_COLUMNS};
use crate::{Store, StoreError, User};
use msgrelay_core::now_ms;
use sqlx::any::AnyRow;
use sqlx::Row;

const TOKEN_PREFIX: &str = "mrt_";

/// An API token's metadata (never the token or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub user_id: i64,
    pub username: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        created_at_ms: row.try_get("created_at")?,
        last_used_at_ms: row.try_get("last_used_at")?,
        revoked_at_ms: row.try_get("revoked_at")?,
    })
}

const TOKEN_SELECT: &str =
    "SELECT t.id, t.name, t.user_id, u.username AS username, t.created_at, t.last_used_at, \
     t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id";

impl Store {
    /// Creates an API token for a user; returns its id and the raw token (shown once).
    pub async fn create_api_token(
        &self,
        username: &str,
        name: &str,
    ) -> Result<(i64, String), StoreError> {
        if !(1..=128).contains(&name.chars().count()) {
            return Err(StoreError::invalid("name", "must be 1-128 characters"));
        }
        let user_id = self.user_id(username).await?;
        let raw = format!("{TOKEN_PREFIX}{}", random_token(32));
        let hash = token_hash(&raw);
        sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, user_id, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(&hash)
        .bind(user_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = ?")
            .bind(&hash)
            .fetch_one(&self.pool)
            .await?;
        Ok((id, raw))
    }

    /// The user a raw token belongs to; `None` if unknown, revoked or the user is disabled.
    /// Records the time of use.
    pub async fn authenticate_api_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ? AND t.revoked_at IS NULL"
        ))
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(user) = row.as_ref().map(user_from_row).transpose()? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ?")
            .bind(now_ms())
            .bind(&hash)
            .execute(&self.pool)
            .await?;
        Ok(Some(user))
    }

    /// Revokes a token (idempotent). Unknown id → `NotFound`.
    pub async fn revoke_api_token(&self, id: i64) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("api token {id}")));
        }
        Ok(())
    }

    /// All tokens, or one user's, oldest first.
    pub async fn list_api_tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiToken>, StoreError> {
        let rows = match user_id {
            Some(u) => {
                sqlx::query(&format!("{TOKEN_SELECT} WHERE t.user_id = ? ORDER BY t.id"))
                    .bind(u)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("{TOKEN_SELECT} ORDER BY t.id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(token_from_row).collect()
    }
}
