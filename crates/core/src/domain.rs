//! Validated domain newtypes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused; `field` names the JSON field, `reason` is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DomainError {
    pub field: &'static str,
    pub reason: String,
}

impl DomainError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A message id: a UUID (v7, time-ordered) minted by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub uuid::Uuid);

impl MessageId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| DomainError::new("id", "not a UUID"))
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client identifier: 1–64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok_len = (1..=64).contains(&s.len());
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok_len && ok_first && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::new(
                "client_id",
                "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ClientId> for String {
    fn from(c: ClientId) -> String {
        c.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sender number: E.164 (`+` then 8–15 digits, no leading zero) or, when allowed,
/// an alphanumeric sender id (1–11 letters, digits or spaces, at least one letter).
/// `Debug` never prints the number.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderNumber(String);

impl SenderNumber {
    pub fn parse(s: &str, allow_alphanumeric: bool) -> Result<Self, DomainError> {
        let field = "sender_number";
        if s.is_empty() {
            return Err(DomainError::new(field, "must not be empty"));
        }
        if let Some(digits) = s.strip_prefix('+') {
            let all_digits = digits.chars().all(|c| c.is_ascii_digit());
            if all_digits && (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
                return Ok(Self(s.to_owned()));
            }
        } else if allow_alphanumeric {
            let ok_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ');
            let has_letter = s.chars().any(|c| c.is_ascii_alphabetic());
            if ok_chars && has_letter && s.len() <= 11 && s.trim() == s {
                return Ok(Self(s.to_owned()));
            }
            return Err(DomainError::new(
                field,
                "must be E.164 (+ and 8-15 digits) or an alphanumeric sender id of at most 11 characters",
            ));
        }
        Err(DomainError::new(
            field,
            "must be in E.164 format: '+' followed by 8-15 digits, no leading zero",
        ))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SenderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SenderNumber(***)")
    }
}

/// A message body: non-empty, at most `max_chars` Unicode characters, no NUL. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(s: &str, max_chars: usize) -> Result<Self, DomainError> {
        let field = "message_body";
        if s.trim().is_empty() {
            return Err(DomainError::new(field, "must not be empty"));
        }
        let n = s.chars().count();
        if n > max_chars {
            return Err(DomainError::new(
                field,
                format!("must be at most {max_chars} characters (got {n})"),
            ));
        }
        if s.contains('\0') {
            return Err(DomainError::new(field, "must not contain NUL characters"));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageBody(***)")
    }
}

/// Where a message is in its life. Status only moves forward: queued → delivered | failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Queued,
    Delivered,
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "queued" => Ok(Self::Queued),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            _ => Err(DomainError::new(
                "status",
                "must be one of queued, delivered, failed",
            )),
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DNS name as a certificate SAN, a client's domain and `proxy.domains` use it: 1–253
/// characters, dot-separated labels of 1–63 ASCII letters, digits or '-' (not at a label's start
/// or end), kept lowercase. The one validator of domain names; config, store and tls call it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let d = s.to_ascii_lowercase();
        let ok = (1..=253).contains(&d.len())
            && d.split('.').all(|l| {
                (1..=63).contains(&l.len())
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if ok {
            Ok(Self(d))
        } else {
            Err(DomainError::new(
                "domain",
                "must be a DNS name: dot-separated labels of letters, digits and '-' (at most 253 characters)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DomainName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DomainName> for String {
    fn from(d: DomainName) -> String {
        d.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the proxy does with a client certificate, as the registry reports it: only `Active` is
/// accepted; the others name the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Active,
    Disabled,
    Revoked,
    Expired,
}

impl ClientStatus {
    /// The status of one certificate at `now_ms`: revocation first, then expiry, then the client's
    /// own switch (the one rule for the registry, the CLI and the portal).
    pub fn of_certificate(
        revoked: bool,
        not_after_ms: i64,
        client_active: bool,
        now_ms: i64,
    ) -> Self {
        if revoked {
            Self::Revoked
        } else if not_after_ms <= now_ms {
            Self::Expired
        } else if !client_active {
            Self::Disabled
        } else {
            Self::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A portal user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            _ => Err(DomainError::new("role", "must be 'user' or 'admin'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_validated_and_lowercased() {
        assert_eq!(
            DomainName::parse("Relay.Example.com").unwrap().as_str(),
            "relay.example.com"
        );
        assert!(DomainName::parse("localhost").is_ok());
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "-a.b",
            "a-.b",
            "x'; DROP",
            "a/b",
            "*.example.com",
            &"a".repeat(64),
            &"a.".repeat(127),
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_status_precedence_and_wire_form() {
        assert_eq!(
            ClientStatus::of_certificate(true, 0, false, 10),
            ClientStatus::Revoked
        );
        assert_eq!(
            ClientStatus::of_certificate(false, 10, false, 10),
            ClientStatus::Expired
        );
        assert_eq!(
            ClientStatus::of_certificate(false, 11, false, 10),
            ClientStatus::Disabled
        );
        assert_eq!(
            ClientStatus::of_certificate(false, 11, true, 10),
            ClientStatus::Active
        );
        assert_eq!(
            serde_json::to_string(&ClientStatus::Revoked).unwrap(),
            "\"revoked\""
        );
        assert!(serde_json::from_str::<ClientStatus>("\"bogus\"").is_err());
    }

    #[test]
    fn e164_accepts_valid_and_rejects_invalid() {
        assert!(SenderNumber::parse("+15551234567", false).is_ok());
        for bad in [
            "",
            "15551234567",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+1555abc4567",
            "ACME",
        ] {
            assert!(SenderNumber::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn alphanumeric_senders_only_when_allowed() {
        assert!(SenderNumber::parse("ACME Bank", true).is_ok());
        assert!(SenderNumber::parse("ACME Bank", false).is_err());
        assert!(SenderNumber::parse("123", true).is_err());
        assert!(SenderNumber::parse("ThisIsTooLong", true).is_err());
    }

    #[test]
    fn body_limits_count_characters_not_bytes() {
        assert!(MessageBody::parse("héllo", 5).is_ok());
        assert!(MessageBody::parse("héllo!", 5).is_err());
        assert!(MessageBody::parse("   ", 5).is_err());
        assert!(MessageBody::parse("a\0b", 5).is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let s = SenderNumber::parse("+15551234567", false).unwrap();
        let b = MessageBody::parse("secret", 10).unwrap();
        assert!(!format!("{s:?}{b:?}").contains("555"));
        assert!(!format!("{b:?}").contains("secret"));
    }

    #[test]
    fn client_ids() {
        assert!(ClientId::parse("demo").is_ok());
        assert!(ClientId::parse("acme-01.prod_x").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(ClientId::parse(bad).is_err(), "{bad}");
        }
    }
}
