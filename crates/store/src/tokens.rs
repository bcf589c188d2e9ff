//! API tokens for `Authorization: Bearer`. The raw token (`mrt_…`) is returned once; the
//! database keeps only its SHA-256. Every token has a scope (`read`: the message API; `admin`:
//! the admin API as well, only for administrators) and an expiry (90 days unless chosen).

use std::fmt;

use crate::secrets::{random_token, token_hash};
use crate::users::{user_from_row, USER_COLUMNS};
use crate::{Store, StoreError, User};
use msgrelay_core::{now_ms, Role};
use sqlx::any::AnyRow;
use sqlx::Row;

const TOKEN_PREFIX: &str = "mrt_";
/// Lifetime of a token created without an explicit one.
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
/// Longest lifetime a token may be given (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenScope {
    /// Read messages (`/api/v1/messages`, `/api/v1/auth/me`).
    Read,
    /// Everything `read` may, plus the admin API (administrators only).
    Admin,
}

impl TokenScope {
    /// `read` or `admin`.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            _ => Err(StoreError::invalid("scope", "must be read or admin")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: TokenScope) -> bool {
        self >= needed
    }
}

/// An API token's metadata (never the token or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub user_id: i64,
    pub username: String,
    pub scope: TokenScope,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl ApiToken {
    /// Neither revoked nor expired at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms > now_ms
    }
}

/// A token just created: its id, expiry, and the raw token, shown once. `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedToken {
    pub id: i64,
    pub scope: TokenScope,
    pub expires_at_ms: i64,
    /// `mrt_…`; the database keeps only its hash.
    pub token: String,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .field("scope", &self.scope)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("token", &"***")
            .finish()
    }
}

/// A caller authenticated by a live token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuth {
    pub user: User,
    pub scope: TokenScope,
    pub token_id: i64,
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken, StoreError> {
    let scope: String = row.try_get("scope")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        scope: TokenScope::parse(&scope)
            .map_err(|_| crate::corrupt(format!("unknown token scope {scope:?}")))?,
        created_at_ms: row.try_get("created_at")?,
        expires_at_ms: row.try_get("expires_at")?,
        last_used_at_ms: row.try_get("last_used_at")?,
        revoked_at_ms: row.try_get("revoked_at")?,
    })
}

const TOKEN_SELECT: &str =
    "SELECT t.id, t.name, t.user_id, u.username AS username, t.scope, t.created_at, t.expires_at, \
     t.last_used_at, t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id";

impl Store {
    /// Creates a `read` token valid for [`DEFAULT_TOKEN_DAYS`]; returns its id and the raw token.
    pub async fn create_api_token(
        &self,
        username: &str,
        name: &str,
    ) -> Result<(i64, String), StoreError> {
        let t = self
            .create_scoped_api_token(username, name, TokenScope::Read, None)
            .await?;
        Ok((t.id, t.token))
    }

    /// Creates a token of `scope` for a user, valid for `days` (default 90, at most 3650).
    /// An `admin` token needs an administrator.
    pub async fn create_scoped_api_token(
        &self,
        username: &str,
        name: &str,
        scope: TokenScope,
        days: Option<u32>,
    ) -> Result<CreatedToken, StoreError> {
        if !(1..=128).contains(&name.chars().count()) {
            return Err(StoreError::invalid("name", "must be 1-128 characters"));
        }
        let days = days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(StoreError::invalid(
                "days",
                format!("must be from 1 to {MAX_TOKEN_DAYS}"),
            ));
        }
        let user = self
            .get_user_by_name(username)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {username}")))?;
        if scope == TokenScope::Admin && user.role != Role::Admin {
            return Err(StoreError::invalid(
                "scope",
                "admin tokens are only for administrators",
            ));
        }
        let raw = format!("{TOKEN_PREFIX}{}", random_token(32));
        let hash = token_hash(&raw);
        let now = now_ms();
        let expires_at_ms = now.saturating_add(i64::from(days) * DAY_MS);
        sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, user_id, created_at, scope, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(&hash)
        .bind(user.id)
        .bind(now)
        .bind(scope.as_str())
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = ?")
            .bind(&hash)
            .fetch_one(&self.pool)
            .await?;
        Ok(CreatedToken {
            id,
            scope,
            expires_at_ms,
            token: raw,
        })
    }

    /// The user a raw token belongs to (see [`Store::authenticate_scoped_api_token`]).
    pub async fn authenticate_api_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .authenticate_scoped_api_token(token)
            .await?
            .map(|a| a.user))
    }

    /// The user and scope of a raw token; `None` if unknown, revoked, expired or the user is
    /// disabled. Records the time of use.
    pub async fn authenticate_scoped_api_token(
        &self,
        token: &str,
    ) -> Result<Option<TokenAuth>, StoreError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let now = now_ms();
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, t.id AS token_id, t.scope AS scope FROM api_tokens t \
             JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > ?"
        ))
        .bind(&hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        if user.disabled {
            return Ok(None);
        }
        let scope: String = row.try_get("scope")?;
        let scope = TokenScope::parse(&scope)
            .map_err(|_| crate::corrupt(format!("unknown token scope {scope:?}")))?;
        let token_id: i64 = row.try_get("token_id")?;
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(token_id)
            .execute(&self.pool)
            .await?;
        Ok(Some(TokenAuth {
            user,
            scope,
            token_id,
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(TokenScope::parse("read").unwrap(), TokenScope::Read);
        assert_eq!(TokenScope::parse("admin").unwrap().as_str(), "admin");
        assert!(TokenScope::parse("Admin").is_err());
        assert!(TokenScope::Admin.allows(TokenScope::Read));
        assert!(!TokenScope::Read.allows(TokenScope::Admin));
    }

    #[test]
    fn created_token_debug_is_redacted() {
        let t = CreatedToken {
            id: 1,
            scope: TokenScope::Read,
            expires_at_ms: 0,
            token: "mrt_secret".into(),
        };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
