//! Clients, their certificates, and the registry the proxy caches (fingerprint → client, status).

use crate::{corrupt, Store, StoreError};
use msgrelay_core::{now_ms, ClientId, ClientStatus, DomainName};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A client system that submits messages with a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: ClientId,
    /// SHA-256 fingerprint (lowercase hex) of the most recently added certificate.
    pub cert_fingerprint: Option<String>,
    pub domain: String,
    pub owner_user_id: i64,
    pub owner_username: String,
    /// `false` when an admin disabled the client (status `disabled`).
    pub active: bool,
    pub created_at_ms: i64,
}

/// A certificate to record for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// Serial number in hex (colons and case are normalised away).
    pub serial_hex: String,
    /// SHA-256 of the DER in hex (colons and case are normalised away).
    pub fingerprint: String,
    pub client_id: ClientId,
    pub not_after_ms: i64,
}

/// A recorded client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub serial_hex: String,
    pub fingerprint: String,
    pub client_id: ClientId,
    pub not_after_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoke_reason: Option<String>,
    pub created_at_ms: i64,
}

/// One certificate as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRow {
    pub fingerprint: String,
    pub client_id: ClientId,
    pub domain: String,
    pub status: ClientStatus,
}

const CLIENT_SELECT: &str = "SELECT c.client_id, c.cert_fingerprint, c.domain, c.owner_user_id, \
     u.username AS owner_username, c.status, c.created_at FROM clients c JOIN users u ON u.id = c.owner_user_id";
const CERT_COLUMNS: &str =
    "serial, fingerprint, client_id, not_after, revoked_at, revoke_reason, created_at";

fn client_id_col(row: &AnyRow, col: &str) -> Result<ClientId, StoreError> {
    let s: String = row.try_get(col)?;
    ClientId::parse(&s).map_err(|_| corrupt(format!("bad client id {s:?}")))
}

fn client_from_row(row: &AnyRow) -> Result<Client, StoreError> {
    Ok(Client {
        client_id: client_id_col(row, "client_id")?,
        cert_fingerprint: row.try_get("cert_fingerprint")?,
        domain: row.try_get("domain")?,
        owner_user_id: row.try_get("owner_user_id")?,
        owner_username: row.try_get("owner_username")?,
        active: row.try_get::<String, _>("status")? == "active",
        created_at_ms: row.try_get("created_at")?,
    })
}

fn cert_from_row(row: &AnyRow) -> Result<ClientCertificate, StoreError> {
    Ok(ClientCertificate {
        serial_hex: row.try_get("serial")?,
        fingerprint: row.try_get("fingerprint")?,
        client_id: client_id_col(row, "client_id")?,
        not_after_ms: row.try_get("not_after")?,
        revoked_at_ms: row.try_get("revoked_at")?,
        revoke_reason: row.try_get("revoke_reason")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

/// Lowercase hex without colons; `max` hex digits at most.
fn normalize_hex(
    field: &'static str,
    s: &str,
    exact: Option<usize>,
    max: usize,
) -> Result<String, StoreError> {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let ok = !hex.is_empty() && hex.len() <= max && hex.chars().all(|c| c.is_ascii_hexdigit());
    if !ok || exact.is_some_and(|n| hex.len() != n) {
        return Err(StoreError::invalid(
            field,
            "must be hexadecimal of the expected length",
        ));
    }
    Ok(hex)
}

fn normalize_serial(s: &str) -> Result<String, StoreError> {
    normalize_hex("serial", s, None, 64)
}

fn validate_domain(domain: &str) -> Result<String, StoreError> {
    DomainName::parse(domain)
        .map(String::from)
        .map_err(|e| StoreError::invalid("domain", e.reason))
}

impl Store {
    /// Creates an active client owned by `owner_username`. Duplicate id → `Conflict`.
    pub async fn create_client(
        &self,
        client_id: &ClientId,
        owner_username: &str,
        domain: &str,
    ) -> Result<Client, StoreError> {
        let domain = validate_domain(domain)?;
        let owner = self.user_id(owner_username).await?;
        sqlx::query("INSERT INTO clients (client_id, domain, owner_user_id, status, created_at) VALUES (?, ?, ?, 'active', ?)")
            .bind(client_id.as_str())
            .bind(domain)
            .bind(owner)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, format!("client {client_id} already exists")))?;
        self.get_client(client_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("client {client_id}")))
    }

    /// The client with this id, if any.
    pub async fn get_client(&self, client_id: &ClientId) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(&format!("{CLIENT_SELECT} WHERE c.client_id = ?"))
            .bind(client_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    /// All clients, or those owned by one user, by client id.
    pub async fn list_clients(
        &self,
        owner_user_id: Option<i64>,
    ) -> Result<Vec<Client>, StoreError> {
        let rows = match owner_user_id {
            Some(owner) => {
                sqlx::query(&format!(
                    "{CLIENT_SELECT} WHERE c.owner_user_id = ? ORDER BY c.client_id"
                ))
                .bind(owner)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{CLIENT_SELECT} ORDER BY c.client_id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(client_from_row).collect()
    }

    /// Enables or disables a client (a disabled client's certificates show as `disabled`).
    pub async fn set_client_status(
        &self,
        client_id: &ClientId,
        active: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE clients SET status = ? WHERE client_id = ?")
            .bind(if active { "active" } else { "disabled" })
            .bind(client_id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("client {client_id}")));
        }
        Ok(())
    }

    /// Records a certificate and makes it the client's current one.
    pub async fn add_certificate(&self, cert: &NewCertificate) -> Result<(), StoreError> {
        let serial = normalize_serial(&cert.serial_hex)?;
        let fingerprint = normalize_hex("fingerprint", &cert.fingerprint, Some(64), 64)?;
        let client = cert.client_id.as_str();
        let mut tx = self.begin_write().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT client_id FROM clients WHERE client_id = ?")
                .bind(client)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("client {client}")));
        }
        sqlx::query(&format!(
            "INSERT INTO client_certificates ({CERT_COLUMNS}) VALUES (?, ?, ?, ?, NULL, NULL, ?)"
        ))
        .bind(&serial)
        .bind(&fingerprint)
        .bind(client)
        .bind(cert.not_after_ms)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::conflict_or(
                e,
                format!("certificate {serial} or its fingerprint already exists"),
            )
        })?;
        sqlx::query("UPDATE clients SET cert_fingerprint = ? WHERE client_id = ?")
            .bind(&fingerprint)
            .bind(client)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a certificate (idempotent: a second call keeps the first time and reason).
    pub async fn revoke_certificate(
        &self,
        serial_hex: &str,
        reason: Option<&str>,
    ) -> Result<ClientCertificate, StoreError> {
        let serial = normalize_serial(serial_hex)?;
        if reason.is_some_and(|r| r.chars().count() > 255) {
            return Err(StoreError::invalid(
                "reason",
                "must be at most 255 characters",
            ));
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE client_certificates SET revoked_at = ?, revoke_reason = ? WHERE serial = ? AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(reason)
            .bind(&serial)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "SELECT {CERT_COLUMNS} FROM client_certificates WHERE serial = ?"
        ))
        .bind(&serial)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("certificate {serial}")))?;
        let cert = cert_from_row(&row)?;
        tx.commit().await?;
        Ok(cert)
    }

    /// All certificates, or one client's, oldest first.
    pub async fn list_certificates(
        &self,
        client_id: Option<&ClientId>,
    ) -> Result<Vec<ClientCertificate>, StoreError> {
        let rows = match client_id {
            Some(c) => {
                sqlx::query(&format!("SELECT {CERT_COLUMNS} FROM client_certificates WHERE client_id = ? ORDER BY created_at, serial"))
                    .bind(c.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {CERT_COLUMNS} FROM client_certificates ORDER BY client_id, created_at, serial"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(cert_from_row).collect()
    }

    /// Revoked certificates, for building the CRL.
    pub async fn revoked_certificates(&self) -> Result<Vec<ClientCertificate>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CERT_COLUMNS} FROM client_certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(cert_from_row).collect()
    }

    /// Every certificate with its client. Status is `active` only if the certificate is neither
    /// revoked nor expired and the client is active; otherwise `revoked`, `expired` or `disabled`.
    pub async fn registry(&self) -> Result<Vec<RegistryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT cc.fingerprint, cc.client_id, c.domain, c.status, cc.not_after, cc.revoked_at \
             FROM client_certificates cc JOIN clients c ON c.client_id = cc.client_id ORDER BY cc.client_id, cc.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let now = now_ms();
        rows.iter()
            .map(|row| {
                let revoked = row.try_get::<Option<i64>, _>("revoked_at")?.is_some();
                let active = row.try_get::<String, _>("status")? == "active";
                let status =
                    ClientStatus::of_certificate(revoked, row.try_get("not_after")?, active, now);
                Ok(RegistryRow {
                    fingerprint: row.try_get("fingerprint")?,
                    client_id: client_id_col(row, "client_id")?,
                    domain: row.try_get("domain")?,
                    status,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_domains() {
        assert_eq!(normalize_serial("0A:1b").unwrap(), "0a1b");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_hex("fingerprint", "ab", Some(64), 64).is_err());
        assert_eq!(
            validate_domain("Relay.Example.com").unwrap(),
            "relay.example.com"
        );
        assert!(validate_domain("a..b").is_err());
        assert!(validate_domain("x'; DROP").is_err());
    }
}
