//! Strict parsing of a submission: every problem names the field and the reason; nothing
//! invalid gets past this module.

use msgrelay_core::config::ValidationConfig;
use msgrelay_core::{MessageBody, SenderNumber};
use msgrelay_ops::Problem;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A valid submission.
#[derive(Debug)]
pub(crate) struct Submission {
    pub sender: SenderNumber,
    pub body: MessageBody,
    pub claimed_client_id: Option<String>,
    pub timestamp: Option<String>,
}

impl Submission {
    /// SHA-256 over the canonical request, to tell a retry from a different request under the same key.
    pub fn request_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.sender.as_str(),
            self.body.as_str(),
            self.claimed_client_id,
            self.timestamp
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

const TOP_FIELDS: &[&str] = &["sender_number", "message_body", "metadata"];
const METADATA_FIELDS: &[&str] = &["client_id", "timestamp"];

/// Parses the JSON body (400 if it is not JSON, 422 naming the field otherwise).
pub(crate) fn parse(bytes: &[u8], rules: &ValidationConfig) -> Result<Submission, Problem> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            "malformed-json",
            "request body must be a JSON object",
        ));
    };
    reject_unknown(&obj, TOP_FIELDS, "")?;
    let sender = required_string(&obj, "sender_number")?;
    let body = required_string(&obj, "message_body")?;
    let sender = SenderNumber::parse(sender, rules.allow_alphanumeric_senders)
        .map_err(|e| Problem::invalid_field(e.field, e.reason))?;
    let body = MessageBody::parse(body, rules.max_message_chars)
        .map_err(|e| Problem::invalid_field(e.field, e.reason))?;

    let (mut claimed_client_id, mut timestamp) = (None, None);
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => {
            reject_unknown(meta, METADATA_FIELDS, "metadata.")?;
            claimed_client_id =
                optional_string(meta, "client_id", "metadata.client_id")?.map(str::to_owned);
            if let Some(ts) = optional_string(meta, "timestamp", "metadata.timestamp")? {
                chrono::DateTime::parse_from_rfc3339(ts).map_err(|_| {
                    Problem::invalid_field(
                        "metadata.timestamp",
                        "must be an ISO-8601 / RFC 3339 date-time, e.g. 2026-11-24T10:00:00Z",
                    )
                })?;
                timestamp = Some(ts.to_owned());
            }
        }
        Some(_) => return Err(Problem::invalid_field("metadata", "must be an object")),
    }
    Ok(Submission {
        sender,
        body,
        claimed_client_id,
        timestamp,
    })
}

/// The metric label for a refused submission: the known fields by name, every other field
/// (an unknown one, named by the client) as `unknown_field`, never by its name.
pub(crate) fn metric_reason(field: Option<&str>) -> &'static str {
    match field {
        None => "malformed",
        Some("sender_number") => "sender_number",
        Some("message_body") => "message_body",
        Some("metadata") => "metadata",
        Some("metadata.client_id") => "metadata.client_id",
        Some("metadata.timestamp") => "metadata.timestamp",
        Some("Idempotency-Key") => "Idempotency-Key",
        Some(_) => "unknown_field",
    }
}

fn reject_unknown(obj: &Map<String, Value>, allowed: &[&str], prefix: &str) -> Result<(), Problem> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Problem::invalid_field(
            &format!("{prefix}{k}"),
            format!("unknown field; allowed: {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn required_string<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, Problem> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(Problem::invalid_field(field, "is required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Problem::invalid_field(field, "must be a string")),
    }
}

fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, Problem> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Problem::invalid_field(field, "must be a string")),
    }
}

/// Checks an `Idempotency-Key` header value: 1–128 visible ASCII characters.
pub(crate) fn idempotency_key(raw: &axum::http::HeaderValue) -> Result<String, Problem> {
    let s = raw
        .to_str()
        .map_err(|_| Problem::invalid_field("Idempotency-Key", "must be visible ASCII"))?;
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::invalid_field(
            "Idempotency-Key",
            "must be 1-128 visible ASCII characters",
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ValidationConfig {
        ValidationConfig {
            allow_alphanumeric_senders: false,
            max_message_chars: 10,
        }
    }

    fn field_of(json: &str) -> (u16, Option<String>) {
        let p = parse(json.as_bytes(), &rules()).unwrap_err();
        (p.status, p.field.clone())
    }

    #[test]
    fn valid_minimal_and_with_metadata() {
        assert!(parse(
            br#"{"sender_number":"+15551234567","message_body":"hi"}"#,
            &rules()
        )
        .is_ok());
        let s = parse(
            br#"{"sender_number":"+15551234567","message_body":"hi","metadata":{"client_id":"demo","timestamp":"2026-11-24T10:00:00Z"}}"#,
            &rules(),
        )
        .unwrap();
        assert_eq!(s.claimed_client_id.as_deref(), Some("demo"));
    }

    #[test]
    fn every_error_names_its_field() {
        assert_eq!(field_of("not json"), (400, None));
        assert_eq!(field_of("[1]"), (400, None));
        assert_eq!(
            field_of(r#"{"message_body":"hi"}"#),
            (422, Some("sender_number".into()))
        );
        assert_eq!(
            field_of(r#"{"sender_number":"123","message_body":"hi"}"#),
            (422, Some("sender_number".into()))
        );
        assert_eq!(
            field_of(r#"{"sender_number":"+15551234567"}"#),
            (422, Some("message_body".into()))
        );
        assert_eq!(
            field_of(r#"{"sender_number":"+15551234567","message_body":""}"#),
            (422, Some("message_body".into()))
        );
        assert_eq!(
            field_of(r#"{"sender_number":"+15551234567","message_body":"01234567890"}"#),
            (422, Some("message_body".into()))
        );
        assert_eq!(
            field_of(r#"{"sender_number":15551234567,"message_body":"x"}"#),
            (422, Some("sender_number".into()))
        );
        assert_eq!(
            field_of(r#"{"sender_number":"+15551234567","message_body":"x","extra":1}"#),
            (422, Some("extra".into()))
        );
        assert_eq!(
            field_of(
                r#"{"sender_number":"+15551234567","message_body":"x","metadata":{"timestamp":"yesterday"}}"#
            ),
            (422, Some("metadata.timestamp".into()))
        );
        assert_eq!(
            field_of(r#"{"sender_number":"+15551234567","message_body":"x","metadata":[]}"#),
            (422, Some("metadata".into()))
        );
    }

    #[test]
    fn unknown_fields_are_one_metric_label() {
        let (_, field) = field_of(
            r#"{"sender_number":"+15551234567","message_body":"x","a\"} 1\nfake_metric 1":1}"#,
        );
        assert_eq!(metric_reason(field.as_deref()), "unknown_field");
        assert_eq!(metric_reason(Some("metadata.tag")), "unknown_field");
        assert_eq!(metric_reason(Some("sender_number")), "sender_number");
    }

    #[test]
    fn request_hash_distinguishes_payloads() {
        let a = parse(
            br#"{"sender_number":"+15551234567","message_body":"a"}"#,
            &rules(),
        )
        .unwrap();
        let b = parse(
            br#"{"sender_number":"+15551234567","message_body":"b"}"#,
            &rules(),
        )
        .unwrap();
        let a2 = parse(
            br#"{"message_body":"a","sender_number":"+15551234567"}"#,
            &rules(),
        )
        .unwrap();
        assert_ne!(a.request_hash(), b.request_hash());
        assert_eq!(a.request_hash(), a2.request_hash());
    }
}
