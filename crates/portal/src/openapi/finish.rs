//! The last step of every OpenAPI document, in one place: the answers every operation of an API
//! can give besides its own (authentication, CSRF, body rejections, the listener's request
//! timeout), `application/problem+json` with the `Problem` schema on every error response, and
//! the limits that come from configuration (message length, sender format, purge floor), so the
//! served document states the limits of the running relay.

use msgrelay_core::Config;
use serde_json::{json, Map, Value};

/// Which API a document describes: their common answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Portal,
    Proxy,
    Internal,
}

/// E.164: `+`, then 8–15 digits, no leading zero (`msgrelay_core::SenderNumber`).
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{7,14}$";
/// An alphanumeric sender id (when `validation.allow_alphanumeric_senders`): at most 11 letters,
/// digits or inner spaces, at least one letter.
const ALNUM_SENDER_PATTERN: &str = r"^[A-Za-z0-9]*[A-Za-z][A-Za-z0-9 ]*$";
/// A message body: not blank, no NUL (`msgrelay_core::MessageBody`).
pub const BODY_PATTERN: &str = r"^[^\u0000]*[^\s\u0000][^\u0000]*$";

/// Completes `doc` (the JSON form of a utoipa document) for `api` under `cfg`.
pub fn finish(doc: &mut Value, api: Api, cfg: &Config) {
    apply_config(doc, api, cfg);
    if api != Api::Portal {
        // OpenAPI 3.1 names mutual TLS as a security scheme; both other APIs need a certificate.
        let (name, what) = match api {
            Api::Proxy => ("clientCertificate", "a client certificate of the client CA, registered to an active client (SHA-256 fingerprint → client_id)"),
            _ => ("serviceCertificate", "a service certificate of the internal CA (proxy or worker)"),
        };
        doc["components"]["securitySchemes"] =
            json!({ name: {"type": "mutualTLS", "description": what} });
        doc["security"] = json!([{ name: [] }]);
    }
    let secured_by_default = doc
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            if api == Api::Portal && path.starts_with("/api/v1/admin/") {
                // OpenAPI 3.1 role names: an administrator's session, or an admin-scope token.
                op["security"] = json!([{"session": ["admin"]}, {"bearer": ["admin"]}]);
            }
            let common = common_answers(api, path, method, op, secured_by_default, cfg);
            let responses = op
                .as_object_mut()
                .expect("operation")
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses");
            for (status, why) in common {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| json!({ "description": why }));
            }
            for (status, resp) in responses.iter_mut() {
                let code: u16 = status.parse().unwrap_or(0);
                if code >= 400 {
                    problem_response(resp, code);
                }
            }
        }
    }
}

/// Error bodies are problem documents; 429 and 503 also say when to come back.
fn problem_response(resp: &mut Value, code: u16) {
    let r = resp.as_object_mut().expect("response");
    r.insert(
        "content".into(),
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}),
    );
    if matches!(code, 429 | 503) {
        r.insert(
            "headers".into(),
            json!({"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}}),
        );
    }
    if r.get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        r.insert("description".into(), json!(default_description(code)));
    }
}

fn default_description(code: u16) -> &'static str {
    match code {
        400 => "malformed request",
        401 => "not authenticated",
        403 => "forbidden",
        404 => "not found",
        409 => "conflict",
        413 => "body too large",
        415 => "unsupported content type",
        422 => "invalid input (the problem names the field)",
        429 => "too many requests; see Retry-After",
        500 => "internal error; the cause was logged",
        503 => "unavailable; see Retry-After",
        _ => "error",
    }
}

/// The statuses an operation of `api` can answer whatever its handler does.
fn common_answers(
    api: Api,
    path: &str,
    method: &str,
    op: &Value,
    secured_by_default: bool,
    cfg: &Config,
) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let has_body = op.get("requestBody").is_some();
    let has_params = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|p| p["in"] == "path" || p["in"] == "query"));
    let timeout = cfg.http.request_timeout_secs;
    match api {
        Api::Portal => {
            let secured = match op.get("security").and_then(Value::as_array) {
                Some(s) => !s.is_empty(),
                None => secured_by_default,
            };
            if secured {
                out.push((
                    401,
                    "not logged in, session expired, or an invalid, expired or revoked API token"
                        .to_owned(),
                ));
                let admin = path.starts_with("/api/v1/admin/");
                let unsafe_method = !matches!(method, "get" | "head" | "options");
                let why = match (admin, unsafe_method) {
                    (true, true) => Some("not an administrator, an API token without the admin scope, or (with a session) a missing or wrong X-CSRF-Token"),
                    (true, false) => Some("not an administrator, or an API token without the admin scope"),
                    (false, true) => Some("missing or wrong X-CSRF-Token (session cookie)"),
                    (false, false) => None,
                };
                if let Some(why) = why {
                    out.push((403, why.to_owned()));
                }
            }
            if has_body {
                out.push((400, "the body is not JSON or could not be read".to_owned()));
                out.push((
                    413,
                    "body over the limit (16 KiB for login, 2 MiB otherwise)".to_owned(),
                ));
                out.push((415, "Content-Type is not application/json".to_owned()));
                out.push((
                    422,
                    "the body does not match the schema (the problem names the field)".to_owned(),
                ));
            }
            if has_params {
                out.push((
                    400,
                    "a path or query parameter that cannot be decoded".to_owned(),
                ));
            }
            out.push((503, format!("the database is unavailable, or no answer within http.request_timeout_secs ({timeout} s); see Retry-After")));
        }
        Api::Proxy => {
            out.push((403, "no accepted client certificate: unknown, disabled, revoked, expired or for another domain".to_owned()));
            if has_body {
                out.push((
                    400,
                    "malformed JSON, not an object, or a body cut off".to_owned(),
                ));
                out.push((
                    408,
                    "the body was not received within http.body_read_timeout_secs".to_owned(),
                ));
                out.push((
                    413,
                    format!(
                        "body over proxy.max_body_bytes ({} bytes)",
                        cfg.proxy.max_body_bytes
                    ),
                ));
                out.push((415, "Content-Type is not application/json".to_owned()));
            }
            out.push((503, format!("revocation data stale, queue unavailable or saturated, or no answer within http.request_timeout_secs ({timeout} s); see Retry-After")));
        }
        Api::Internal => {
            out.push((
                403,
                "not the service certificate this route is for".to_owned(),
            ));
            out.push((503, format!("unavailable, or no answer within http.request_timeout_secs ({timeout} s); see Retry-After")));
        }
    }
    out
}

fn schema_mut<'a>(doc: &'a mut Value, name: &str) -> Option<&'a mut Map<String, Value>> {
    doc.pointer_mut(&format!("/components/schemas/{name}/properties"))
        .and_then(Value::as_object_mut)
}

/// Limits that are configuration keys, as the running relay applies them.
fn apply_config(doc: &mut Value, api: Api, cfg: &Config) {
    match api {
        Api::Proxy => {
            if let Some(props) = schema_mut(doc, "SubmitMessage") {
                let v = &cfg.validation;
                props.insert(
                    "message_body".into(),
                    json!({
                        "type": "string",
                        "minLength": 1,
                        "maxLength": v.max_message_chars,
                        "pattern": BODY_PATTERN,
                        "description": format!("Not blank, no NUL, at most {} characters (validation.max_message_chars).", v.max_message_chars),
                        "example": "Your code is 123456",
                    }),
                );
                let sender = if v.allow_alphanumeric_senders {
                    json!({
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 16,
                        "anyOf": [
                            {"pattern": E164_PATTERN},
                            {"pattern": ALNUM_SENDER_PATTERN, "maxLength": 11},
                        ],
                        "description": "E.164, or an alphanumeric sender id of at most 11 characters (validation.allow_alphanumeric_senders is on).",
                        "example": "+15551234567",
                    })
                } else {
                    json!({
                        "type": "string",
                        "pattern": E164_PATTERN,
                        "description": "E.164: '+', then 8-15 digits, no leading zero.",
                        "example": "+15551234567",
                    })
                };
                props.insert("sender_number".into(), sender);
            }
        }
        Api::Portal => {
            if let Some(p) = schema_mut(doc, "PurgeRequest")
                .and_then(|props| props.get_mut("older_than_days"))
                .and_then(Value::as_object_mut)
            {
                p.insert("minimum".into(), json!(cfg.server.max_payload_age_days));
            }
        }
        Api::Internal => {}
    }
}
