//! OpenAPI documents of the three HTTP APIs and the Swagger UI at `/docs` (served from the binary,
//! `utoipa-swagger-ui` with its assets vendored). The portal API is documented from its handlers;
//! the proxy and internal APIs live in other crates (which do not depend on utoipa), so they are
//! described here by doc-only functions whose paths and schemas mirror `msgrelay-proxy`'s routes and
//! `msgrelay_core::wire`. A unit test checks the wire mirrors against the real types. `finish`
//! adds what every operation of an API can answer and the limits taken from configuration.

#![allow(dead_code)] // the doc functions exist only for their `#[utoipa::path]` attributes

mod finish;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use msgrelay_core::Config as RelayConfig;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi, Url};

pub use crate::http::{FieldErrorDoc, ProblemDoc};
pub use finish::{Api, BODY_PATTERN, E164_PATTERN};

// ---------------------------------------------------------------- proxy API (mutual TLS)

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SubmitMetadata)]
pub struct SubmitMetadataDoc {
    /// Must equal the client id of the certificate, if given (403 otherwise).
    pub client_id: Option<String>,
    /// The client's own time stamp (RFC 3339), informational.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
}

/// Unknown fields are refused (422 naming the field). `sender_number` and `message_body` are
/// described by `finish` from `validation.*`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SubmitMessage)]
pub struct SubmitMessageDoc {
    pub sender_number: String,
    pub message_body: String,
    pub metadata: Option<SubmitMetadataDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Accepted)]
pub struct AcceptedDoc {
    /// Message id (UUID).
    #[schema(format = Uuid)]
    pub id: String,
    /// Always `queued`.
    #[schema(pattern = "^queued$")]
    pub status: String,
}

/// The proxy's answer to a certificate it accepts.
#[derive(Serialize, ToSchema)]
#[schema(as = ProxyHealth)]
pub struct ProxyHealthDoc {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    pub status: String,
    /// The client the certificate belongs to.
    pub client_id: String,
}

/// Accepts one message; answers 202 only once it is durably queued.
#[utoipa::path(post, path = "/api/v1/messages", tag = "proxy", request_body = SubmitMessageDoc,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,128}$", example = "order-4711", description = "1-128 visible ASCII characters; same key and payload within 24 h → same id")),
    responses(
        (status = 202, body = AcceptedDoc, description = "durably queued"),
        (status = 400, body = ProblemDoc, description = "malformed JSON, or not a JSON object"),
        (status = 403, body = ProblemDoc, description = "unknown, disabled or revoked client, wrong domain, or metadata.client_id mismatch"),
        (status = 422, body = ProblemDoc, description = "validation (names the field); idempotency key reused with another payload"),
        (status = 500, body = ProblemDoc, description = "the payload could not be sealed; the cause was logged"),
        (status = 503, body = ProblemDoc, description = "queue unavailable or saturated, or revocation data stale; retry with the same Idempotency-Key"),
    ))]
fn proxy_submit() {}

/// Health for certificate holders (`{"status":"ok","client_id":…}`).
#[utoipa::path(get, path = "/api/v1/health", tag = "proxy", responses((status = 200, body = ProxyHealthDoc, description = "the certificate is accepted"), (status = 403, body = ProblemDoc)))]
fn proxy_health() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "msgrelay proxy API",
        description = "Mutual TLS: the client is identified by its certificate (SHA-256 fingerprint → client_id)."
    ),
    paths(proxy_submit, proxy_health),
    components(schemas(ProblemDoc, FieldErrorDoc))
)]
pub struct ProxyApi;

// ---------------------------------------------------------------- internal API (mutual TLS, service certificates)

#[derive(Serialize, ToSchema)]
#[schema(as = RegisterItem)]
pub struct RegisterItemDoc {
    pub id: String,
    pub client_id: String,
    /// When the proxy accepted the message (ms since epoch).
    pub accepted_at_ms: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(as = RegisterRequest)]
pub struct RegisterRequestDoc {
    pub messages: Vec<RegisterItemDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeliverItem)]
pub struct DeliverItemDoc {
    pub id: String,
    pub client_id: String,
    pub accepted_at_ms: i64,
    /// Delivery attempts so far, including this one.
    pub attempt_count: u32,
    /// The sealed payload exactly as the proxy queued it, base64 (standard alphabet).
    pub sealed: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeliverRequest)]
pub struct DeliverRequestDoc {
    pub messages: Vec<DeliverItemDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeliverResult)]
pub struct DeliverResultDoc {
    pub id: String,
    /// `stored` (acknowledge), `rejected` (dead-letter) or `retry` (sealed to a key the server does not hold; retried later).
    pub outcome: String,
    /// Why a message was rejected (never message content).
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeliverResponse)]
pub struct DeliverResponseDoc {
    pub results: Vec<DeliverResultDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = RegistryEntry)]
pub struct RegistryEntryDoc {
    pub fingerprint: String,
    pub client_id: String,
    pub domain: String,
    /// `active`, `revoked`, `expired` or `disabled`; the proxy accepts only `active`.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = RegistryResponse)]
pub struct RegistryResponseDoc {
    pub clients: Vec<RegistryEntryDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SealingKeyResponse)]
pub struct SealingKeyResponseDoc {
    pub key_id: String,
    /// X25519 public key, base64.
    pub public_key: String,
    /// Key ids of the proxy sealing keys the main server opens payloads of.
    pub trusted_proxy_key_ids: Vec<String>,
}

/// Proxy → main server: messages durably queued (recorded as `queued`, never moving a row back).
#[utoipa::path(post, path = "/internal/messages/register", tag = "internal", request_body = RegisterRequestDoc,
    responses((status = 200, description = "`{\"registered\": n}`"), (status = 403, body = ProblemDoc, description = "not the proxy's certificate"), (status = 503, body = ProblemDoc)))]
fn internal_register() {}

/// Worker → main server: sealed messages, opened and stored encrypted at rest in one transaction.
#[utoipa::path(post, path = "/internal/messages/deliver", tag = "internal", request_body = DeliverRequestDoc,
    responses((status = 200, body = DeliverResponseDoc), (status = 403, body = ProblemDoc, description = "not a worker's certificate"), (status = 503, body = ProblemDoc)))]
fn internal_deliver() {}

/// The client registry the proxy caches.
#[utoipa::path(get, path = "/internal/clients", tag = "internal", responses((status = 200, body = RegistryResponseDoc), (status = 403, body = ProblemDoc)))]
fn internal_clients() {}

/// The current CRL of the client CA (PEM).
#[utoipa::path(get, path = "/internal/crl", tag = "internal", responses((status = 200, content_type = "application/pkix-crl+pem", body = String), (status = 403, body = ProblemDoc), (status = 503, body = ProblemDoc)))]
fn internal_crl() {}

/// The public key the proxy seals payloads to.
#[utoipa::path(get, path = "/internal/sealing-key", tag = "internal", responses((status = 200, body = SealingKeyResponseDoc), (status = 403, body = ProblemDoc)))]
fn internal_sealing_key() {}

/// Liveness of the internal listener.
#[utoipa::path(get, path = "/internal/health", tag = "internal", responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
fn internal_health() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "msgrelay internal API",
        description = "Main server, mutual TLS with internal-CA service certificates only (proxy, worker); each route checks the caller's certificate CN."
    ),
    paths(
        internal_register,
        internal_deliver,
        internal_clients,
        internal_crl,
        internal_sealing_key,
        internal_health
    ),
    components(schemas(ProblemDoc, FieldErrorDoc))
)]
pub struct InternalApi;

// ---------------------------------------------------------------- portal API (HTTPS)

struct PortalSecurity;

impl Modify for PortalSecurity {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "API token (`mrt_…`) from /admin/tokens or `msgrelay admin token create`",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(crate::http::SESSION_COOKIE, "session cookie from POST /api/v1/auth/login; unsafe methods also need the X-CSRF-Token header"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "msgrelay portal API", description = "HTTPS. Authenticate with the session cookie of POST /api/v1/auth/login (unsafe methods then need `X-CSRF-Token`) or with `Authorization: Bearer <token>`. Users see messages of the clients they own; administrators see everything and use /api/v1/admin/…"),
    paths(
        crate::api::user::login, crate::api::user::logout, crate::api::user::me,
        crate::api::user::list_messages, crate::api::user::get_message,
        crate::api::admin::list_users, crate::api::admin::create_user, crate::api::admin::set_role,
        crate::api::admin::disable_user, crate::api::admin::enable_user, crate::api::admin::reset_password,
        crate::api::admin::list_clients, crate::api::admin::create_client, crate::api::admin::disable_client,
        crate::api::admin::enable_client, crate::api::admin::issue_certificate, crate::api::admin::revoke_certificate,
        crate::api::admin::list_tokens, crate::api::admin::create_token, crate::api::admin::revoke_token,
        crate::api::admin::stats, crate::api::admin::retry, crate::api::admin::purge,
    ),
    // Types only referenced from query parameters are not collected by utoipa on their own.
    components(schemas(ProblemDoc, FieldErrorDoc, crate::api::doc_types::StatusName)),
    modifiers(&PortalSecurity),
    security(("session" = []), ("bearer" = []))
)]
pub struct PortalApi;

/// The three documents as (name, JSON), as served under `/openapi/<name>.json`: the derived
/// documents, finished for the relay configured by `cfg`.
pub fn documents(cfg: &RelayConfig) -> Vec<(&'static str, serde_json::Value)> {
    [
        ("portal", Api::Portal, PortalApi::openapi()),
        ("proxy", Api::Proxy, ProxyApi::openapi()),
        ("internal", Api::Internal, InternalApi::openapi()),
    ]
    .into_iter()
    .map(|(name, api, doc)| {
        let mut v = serde_json::to_value(doc).expect("an OpenAPI document serializes");
        finish::finish(&mut v, api, cfg);
        (name, v)
    })
    .collect()
}

/// Swagger UI's own scripts are files (fine for `script-src 'self'`), but it sets inline styles.
async fn docs_csp(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    resp
}

/// `/docs` and `/openapi/{proxy,internal,portal}.json`.
pub fn router(cfg: &RelayConfig) -> Router {
    let path = |name: &str| -> &'static str {
        match name {
            "proxy" => "/openapi/proxy.json",
            "internal" => "/openapi/internal.json",
            _ => "/openapi/portal.json",
        }
    };
    let urls = documents(cfg)
        .into_iter()
        .map(|(name, doc)| (Url::new(name, path(name)), doc));
    let ui = SwaggerUi::new("/docs")
        .external_urls_from_iter_unchecked(urls)
        .config(
            Config::default()
                .validator_url("none")
                .try_it_out_enabled(false),
        );
    Router::from(ui).layer(axum::middleware::map_response(docs_csp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgrelay_core::wire;
    use msgrelay_core::{ClientId, MessageId};
    use std::collections::BTreeSet;

    fn schema_props(doc: &serde_json::Value, name: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} missing"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: serde_json::Value) -> BTreeSet<String> {
        v.as_object().expect("object").keys().cloned().collect()
    }

    /// The internal API's mirrored schemas name exactly the fields the real wire types serialize.
    #[test]
    fn internal_schemas_match_wire_types() {
        let doc = serde_json::to_value(InternalApi::openapi()).unwrap();
        let id = MessageId::new();
        let client = ClientId::parse("demo").unwrap();
        let item = wire::DeliverItem {
            id,
            client_id: client.clone(),
            accepted_at_ms: 1,
            attempt_count: 1,
            sealed: String::new(),
        };
        assert_eq!(
            schema_props(&doc, "DeliverItem"),
            keys(serde_json::to_value(&item).unwrap())
        );
        let reg = wire::RegisterItem {
            id,
            client_id: client.clone(),
            accepted_at_ms: 1,
        };
        assert_eq!(
            schema_props(&doc, "RegisterItem"),
            keys(serde_json::to_value(&reg).unwrap())
        );
        let res = wire::DeliverResult {
            id,
            outcome: wire::DeliverOutcome::Rejected,
            reason: Some("x".into()),
        };
        assert_eq!(
            schema_props(&doc, "DeliverResult"),
            keys(serde_json::to_value(&res).unwrap())
        );
        let entry = wire::RegistryEntry {
            fingerprint: String::new(),
            client_id: client,
            domain: String::new(),
            status: msgrelay_core::ClientStatus::Active,
        };
        assert_eq!(
            schema_props(&doc, "RegistryEntry"),
            keys(serde_json::to_value(&entry).unwrap())
        );
        let key = wire::SealingKeyResponse {
            key_id: String::new(),
            public_key: String::new(),
            trusted_proxy_key_ids: Vec::new(),
        };
        assert_eq!(
            schema_props(&doc, "SealingKeyResponse"),
            keys(serde_json::to_value(&key).unwrap())
        );
    }
}
