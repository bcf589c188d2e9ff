//! Portal sessions. The cookie value is returned once; the database keeps only its SHA-256.
//! A session ends after its idle timeout without use (each use slides it) and, however busy,
//! at its absolute lifetime: a stolen cookie cannot be kept alive forever.

use crate::secrets::{random_token, token_hash};
use crate::users::{user_from_row, USER_COLUMNS};
use crate::{Store, StoreError, User};
use msgrelay_core::now_ms;
use sqlx::Row;
use std::fmt;
use std::time::Duration;

/// A freshly created session: the cookie value and its CSRF token. `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// 32 random bytes, base64url; goes into the session cookie.
    pub token: String,
    /// Must accompany unsafe requests authenticated by the cookie.
    pub csrf_token: String,
    pub expires_at_ms: i64,
    /// The session ends at this time however it is used.
    pub absolute_expires_at_ms: i64,
}

/// Absolute lifetime of a session opened with [`Store::create_session`].
pub const DEFAULT_SESSION_ABSOLUTE: Duration = Duration::from_secs(12 * 3600);

fn millis(field: &'static str, d: Duration) -> Result<i64, StoreError> {
    match i64::try_from(d.as_millis()) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => Err(StoreError::invalid(field, "must be positive")),
    }
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"***")
            .field("csrf_token", &"***")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("absolute_expires_at_ms", &self.absolute_expires_at_ms)
            .finish()
    }
}

impl Store {
    /// Opens a session that ends after `ttl` without use and at most [`DEFAULT_SESSION_ABSOLUTE`]
    /// (or `ttl`, if longer) after it began.
    pub async fn create_session(
        &self,
        user_id: i64,
        ttl: Duration,
    ) -> Result<NewSession, StoreError> {
        self.open_session(user_id, ttl, DEFAULT_SESSION_ABSOLUTE.max(ttl))
            .await
    }

    /// Opens a session for a user; it expires after `idle` without use (each use slides it) and
    /// in any case `absolute` after now.
    pub async fn open_session(
        &self,
        user_id: i64,
        idle: Duration,
        absolute: Duration,
    ) -> Result<NewSession, StoreError> {
        let ttl_ms = millis("ttl", idle)?;
        let absolute_ms = millis("absolute lifetime", absolute)?;
        if self.get_user(user_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("user id {user_id}")));
        }
        let now = now_ms();
        let absolute_expires_at_ms = now.saturating_add(absolute_ms);
        let session = NewSession {
            token: random_token(32),
            csrf_token: random_token(32),
            expires_at_ms: now.saturating_add(ttl_ms).min(absolute_expires_at_ms),
            absolute_expires_at_ms,
        };
        // Opportunistic clean-up keeps the table small without a background job.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR absolute_expires_at <= ?")
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, last_seen_at, ttl_ms, absolute_expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash(&session.token))
        .bind(user_id)
        .bind(&session.csrf_token)
        .bind(now)
        .bind(session.expires_at_ms)
        .bind(now)
        .bind(ttl_ms)
        .bind(absolute_expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(session)
    }

    /// The session's user and CSRF token; `None` if unknown, expired (idle or absolute) or the
    /// user is disabled. A live session's expiry slides to now + its ttl, never past its absolute end.
    pub async fn get_session(&self, token: &str) -> Result<Option<(User, String)>, StoreError> {
        let hash = token_hash(token);
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, s.csrf_token AS csrf_token, s.expires_at AS expires_at, s.ttl_ms AS ttl_ms, \
             s.absolute_expires_at AS absolute_expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?"
        ))
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let now = now_ms();
        let user = user_from_row(&row)?;
        let absolute: i64 = row.try_get("absolute_expires_at")?;
        if row.try_get::<i64, _>("expires_at")? <= now || absolute <= now {
            sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
                .bind(&hash)
                .execute(&self.pool)
                .await?;
            return Ok(None);
        }
        if user.disabled {
            return Ok(None);
        }
        let ttl_ms: i64 = row.try_get("ttl_ms")?;
        sqlx::query("UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE token_hash = ?")
            .bind(now)
            .bind(now.saturating_add(ttl_ms).min(absolute))
            .bind(&hash)
            .execute(&self.pool)
            .await?;
        Ok(Some((user, row.try_get("csrf_token")?)))
    }

    /// Ends a session (logout). Unknown tokens are ignored.
    pub async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
