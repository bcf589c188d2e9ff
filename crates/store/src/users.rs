//! Portal users: creation, login, roles, disabling, password resets.

use crate::secrets::{hash_password, verify_password};
use crate::{corrupt, Store, StoreError};
use msgrelay_core::{now_ms, Role};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A portal user. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at_ms: i64,
    pub last_login_at_ms: Option<i64>,
}

/// The user columns, aliased so joined queries read the same names.
pub(crate) const USER_COLUMNS: &str = "u.id AS id, u.username AS username, u.role AS role, \
     u.disabled AS disabled, u.created_at AS created_at, u.last_login_at AS last_login_at";

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: Role::parse(&role).map_err(|_| corrupt(format!("unknown role {role:?}")))?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at_ms: row.try_get("created_at")?,
        last_login_at_ms: row.try_get("last_login_at")?,
    })
}

fn validate_username(username: &str) -> Result<(), StoreError> {
    let ok_len = (3..=64).contains(&username.len());
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "username",
            "must be 3-64 characters of a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

fn validate_password(password: &str) -> Result<(), StoreError> {
    let n = password.chars().count();
    if n < 12 {
        return Err(StoreError::invalid(
            "password",
            "must be at least 12 characters",
        ));
    }
    if n > 1024 {
        return Err(StoreError::invalid(
            "password",
            "must be at most 1024 characters",
        ));
    }
    Ok(())
}

impl Store {
    /// Creates a user with an argon2id password hash. Duplicate username → `Conflict`.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        validate_username(username)?;
        validate_password(password)?;
        let phc = hash_password(&self.hashing, password).await?;
        sqlx::query("INSERT INTO users (username, password_hash, role, disabled, created_at) VALUES (?, ?, ?, 0, ?)")
            .bind(username)
            .bind(phc)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, format!("user {username} already exists")))?;
        self.get_user_by_name(username)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {username}")))
    }

    /// Checks a username and password. Unknown user, wrong password and disabled account all give
    /// `BadCredentials` after the same argon2 work. On success records the login time.
    pub async fn verify_login(&self, username: &str, password: &str) -> Result<User, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS}, u.password_hash AS password_hash FROM users u WHERE u.username = ?"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        let (user, phc) = match row {
            Some(row) => (
                Some(user_from_row(&row)?),
                Some(row.try_get::<String, _>("password_hash")?),
            ),
            None => (None, None),
        };
        let password_ok = verify_password(&self.hashing, password, phc).await?;
        let mut user = match user {
            Some(u) if password_ok && !u.disabled => u,
            _ => return Err(StoreError::BadCredentials),
        };
        let now = now_ms();
        sqlx::query("UPDATE users SET last_login_at = ? WHERE id = ?")
            .bind(now)
            .bind(user.id)
            .execute(&self.pool)
            .await?;
        user.last_login_at_ms = Some(now);
        Ok(user)
    }

    /// The user with this id, if any.
    pub async fn get_user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user with this username, if any.
    pub async fn get_user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// All users, by username.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Disables or re-enables a user; disabling also ends the user's sessions and revokes their
    /// API tokens (re-enabling brings neither back).
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET disabled = ? WHERE username = ?")
            .bind(i64::from(disabled))
            .bind(username)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {username}")));
        }
        if disabled {
            end_credentials_of(&mut tx, username).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Changes a user's role.
    pub async fn set_user_role(&self, username: &str, role: Role) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET role = ? WHERE username = ?")
            .bind(role.as_str())
            .bind(username)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {username}")));
        }
        Ok(())
    }

    /// Sets a new password, ends the user's sessions and revokes their API tokens: whoever held
    /// the old password may have opened a session or created a token with it.
    pub async fn reset_password(&self, username: &str, password: &str) -> Result<(), StoreError> {
        validate_password(password)?;
        let phc = hash_password(&self.hashing, password).await?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE username = ?")
            .bind(phc)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {username}")));
        }
        end_credentials_of(&mut tx, username).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a user and revokes every API token they have.
    pub async fn revoke_user_credentials(&self, username: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if sqlx::query("SELECT id FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("user {username}")));
        }
        end_credentials_of(&mut tx, username).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The id of the user with this name, or `NotFound`.
    pub(crate) async fn user_id(&self, username: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {username}")))
    }
}

async fn end_credentials_of(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    username: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = ?)")
        .bind(username)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE api_tokens SET revoked_at = ? \
         WHERE revoked_at IS NULL AND user_id IN (SELECT id FROM users WHERE username = ?)",
    )
    .bind(now_ms())
    .bind(username)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords() {
        assert!(validate_username("alice.b_c-1").is_ok());
        for bad in ["ab", "Alice", "a b", "x'--", &"a".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_password("short").is_err());
        assert!(validate_password("twelve chars").is_ok());
    }
}
