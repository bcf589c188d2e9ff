//! The published OpenAPI documents describe the APIs as they behave. The portal and proxy
//! documents are taken from the running relay (and must equal `docs/openapi/`); for every
//! operation they list, requests are drawn from the schemas themselves with a seeded generator:
//! valid ones, and one for each way to break each parameter and body field (wrong type, too
//! long, too short, off-pattern, not in the enum, out of range, a required field missing, an
//! unknown field), plus a malformed JSON body and a wrong content type, all with the credentials
//! the operation's security scheme asks for; and the operation again without credentials, with a
//! session but no CSRF token, and with a read-scope token. Every answer must be a status the
//! document lists for that operation, with the content type (problem+json for every error) and
//! body schema it lists. Never a 5xx; a schema-valid request is never refused as malformed
//! (400/413/415/422), and a schema-invalid one is never accepted.

mod schema;

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{Session, TestRelay};
use schema::Doc;

const SEED: u64 = 0x006f_7065_6e61_7069;

/// The credentials an operation is sent with.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Auth {
    None,
    /// The operation's own scheme: admin Bearer token, session (with CSRF), or client certificate.
    Proper,
    SessionWithoutCsrf,
    ReadToken,
}

/// One request to make.
struct Probe {
    label: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<(&'static str, Vec<u8>)>,
    auth: Auth,
    /// `Some(true)`: satisfies every schema; `Some(false)`: breaks one; `None`: inputs valid but
    /// the credentials are not.
    valid: Option<bool>,
}

struct Creds {
    admin_token: String,
    read_token: String,
    session: Session,
}

/// What an operation is: its method, path template and document entry.
struct Op<'a> {
    method: Method,
    template: &'a str,
    op: &'a Value,
    /// The security scheme types that apply (`http`, `apiKey`, `mutualTLS`); empty: none.
    schemes: Vec<String>,
    /// Role names the requirements ask for (`admin`: an administrator or admin-scope token).
    roles: Vec<String>,
}

fn operations<'a>(doc: &'a Value) -> Vec<Op<'a>> {
    let default_security = doc.get("security");
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let security = op.get("security").or(default_security);
            let requirements: Vec<(&String, &Value)> = security
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|req| req.as_object().expect("requirement"))
                .collect();
            let schemes = requirements
                .iter()
                .map(|(name, _)| {
                    doc["components"]["securitySchemes"][name.as_str()]["type"]
                        .as_str()
                        .unwrap_or_else(|| panic!("undefined security scheme {name}"))
                        .to_owned()
                })
                .collect();
            let roles = requirements
                .iter()
                .flat_map(|(_, roles)| roles.as_array().into_iter().flatten())
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            out.push(Op {
                method: method.to_uppercase().parse().expect("method"),
                template,
                op,
                schemes,
                roles,
            });
        }
    }
    out
}

/// A parameter value as the server reads it back from text (query, path and header values are
/// strings on the wire; a number-typed parameter is a number if the text is one).
fn as_wire(schema: &Value, doc: &Doc, v: &Value) -> (String, Value) {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s = doc.resolve(schema);
    let numeric = s["type"] == "integer" || s["type"] == "number";
    let back = match text.parse::<i64>() {
        Ok(n) if numeric => json!(n),
        _ => match text.parse::<f64>() {
            Ok(x) if numeric => json!(x),
            _ => json!(text),
        },
    };
    (text, back)
}
/// A parameter's schema, with the parameter's own example (OpenAPI puts it beside the schema).
fn param_schema(p: &Value) -> Value {
    let mut s = p["schema"].clone();
    if let (Some(ex), Some(o)) = (p.get("example"), s.as_object_mut()) {
        o.insert("example".into(), ex.clone());
    }
    s
}

/// The requests for one operation, drawn from its schemas.
fn probes(doc: &Doc, op: &Op, rng: &mut StdRng) -> Vec<Probe> {
    let params: Vec<&Value> = op.op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let schemas: Vec<Value> = params.iter().map(|p| param_schema(p)).collect();
    let body_schema = op
        .op
        .pointer("/requestBody/content/application~1json/schema");
    // Valid inputs: every parameter given, then only the required ones.
    let mut valid_sets = Vec::new();
    for all in [true, false] {
        let mut values = Vec::new();
        for (p, schema) in params.iter().zip(&schemas) {
            let name = p["name"].as_str().expect("name");
            let v = (all || p["required"] == true || p["in"] == "path")
                .then(|| as_wire(schema, doc, &doc.valid(schema, rng, name)).0);
            values.push((*p, v));
        }
        let body = body_schema.map(|s| doc.valid(s, rng, "body"));
        valid_sets.push((values, body));
    }
    let build = |label: String,
                 values: &[(&Value, Option<String>)],
                 body: Option<(&'static str, Vec<u8>)>,
                 auth: Auth,
                 valid: Option<bool>| {
        let mut path = op.template.to_owned();
        let (mut query, mut headers) = (Vec::new(), Vec::new());
        for (p, v) in values {
            let Some(v) = v else { continue };
            let name = p["name"].as_str().expect("name").to_owned();
            match p["in"].as_str() {
                Some("path") => {
                    path = path.replace(&format!("{{{name}}}"), &crate::support::pct(v))
                }
                Some("query") => query.push((name, v.clone())),
                Some("header") => headers.push((name, v.clone())),
                other => panic!("{}: parameter in {other:?}", op.template),
            }
        }
        Probe {
            label,
            path,
            query,
            headers,
            body,
            auth,
            valid,
        }
    };
    let json_body = |v: &Value| Some(("application/json", v.to_string().into_bytes()));
    let mut out = Vec::new();
    for (values, body) in &valid_sets {
        out.push(build(
            "valid".into(),
            values,
            body.as_ref().and_then(json_body),
            Auth::Proper,
            Some(true),
        ));
    }
    let (values, body) = &valid_sets[0];
    // Each parameter broken in turn (as far as the break survives being sent as text).
    for (i, (p, schema)) in params.iter().zip(&schemas).enumerate() {
        let name = p["name"].as_str().expect("name");
        for (how, bad) in doc.invalid(schema, rng, name) {
            let (text, back) = as_wire(schema, doc, &bad);
            if doc.validate(schema, &back, name).is_ok()
                || (p["in"] == "header" && reqwest::header::HeaderValue::from_str(&text).is_err())
            {
                continue;
            }
            let mut vs = values.clone();
            vs[i].1 = Some(text);
            out.push(build(
                format!("parameter {name}: {how}"),
                &vs,
                body.as_ref().and_then(json_body),
                Auth::Proper,
                Some(false),
            ));
        }
        if p["required"] == true && p["in"] != "path" {
            let mut vs = values.clone();
            vs[i].1 = None;
            out.push(build(
                format!("parameter {name} missing"),
                &vs,
                body.as_ref().and_then(json_body),
                Auth::Proper,
                Some(false),
            ));
        }
    }
    if let Some(s) = body_schema {
        for (how, bad) in doc.invalid(s, rng, "body") {
            out.push(build(
                format!("body {how}"),
                values,
                json_body(&bad),
                Auth::Proper,
                Some(false),
            ));
        }
        let good = body.as_ref().expect("body").to_string().into_bytes();
        out.push(build(
            "body malformed JSON".into(),
            values,
            Some(("application/json", good[..good.len() - 1].to_vec())),
            Auth::Proper,
            Some(false),
        ));
        out.push(build(
            "body as text/plain".into(),
            values,
            Some(("text/plain", good)),
            Auth::Proper,
            Some(false),
        ));
    }
    // The valid request with the wrong credentials.
    let body = body.as_ref().and_then(json_body);
    if op.schemes.iter().any(|t| t == "http" || t == "apiKey") {
        out.push(build(
            "no credentials".into(),
            values,
            body.clone(),
            Auth::None,
            None,
        ));
        // A read-scope token is refused where an admin role is required, and is as good as
        // any token elsewhere.
        let admin_only = op.roles.iter().any(|r| r == "admin");
        out.push(build(
            "read-scope token".into(),
            values,
            body.clone(),
            Auth::ReadToken,
            (!admin_only).then_some(true),
        ));
        if !matches!(op.method, Method::GET | Method::HEAD) {
            out.push(build(
                "session without CSRF token".into(),
                values,
                body,
                Auth::SessionWithoutCsrf,
                None,
            ));
        }
    }
    out
}

/// Sends a probe; returns status, content type and body.
async fn send(
    client: &reqwest::Client,
    base: &str,
    op: &Op<'_>,
    p: &Probe,
    creds: &Creds,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = client
        .request(op.method.clone(), format!("{base}{}", p.path))
        .query(&p.query);
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    let bearer = op.schemes.iter().any(|t| t == "http");
    req = match p.auth {
        Auth::None => req,
        Auth::Proper if bearer => req.bearer_auth(&creds.admin_token),
        Auth::Proper => req,
        Auth::ReadToken => req.bearer_auth(&creds.read_token),
        Auth::SessionWithoutCsrf => req.header(reqwest::header::COOKIE, &creds.session.cookie),
    };
    if let Some((ct, bytes)) = &p.body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, *ct)
            .body(bytes.clone());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {} ({}): {e}", op.method, op.template, p.label));
    let status = resp.status();
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, resp.bytes().await.expect("body").to_vec())
}

/// Checks one answer against the document; returns what is wrong, if anything.
fn check(
    doc: &Doc,
    op: &Op,
    p: &Probe,
    (status, ct, body): &(StatusCode, String, Vec<u8>),
) -> Option<String> {
    let what = format!("{} {} [{}] -> {status}", op.method, op.template, p.label);
    if status.is_server_error() {
        return Some(format!("{what}: a 5xx"));
    }
    let malformed = [400, 413, 415, 422].contains(&status.as_u16());
    match p.valid {
        Some(true) if malformed => {
            return Some(format!(
                "{what}: a schema-valid request was refused: {}",
                String::from_utf8_lossy(body)
            ))
        }
        Some(false) | None if status.is_success() => {
            return Some(format!("{what}: accepted although {}", p.label))
        }
        _ => {}
    }
    let Some(documented) = op.op["responses"].get(status.as_str()) else {
        return Some(format!("{what}: status not documented for this operation"));
    };
    let content = documented.get("content").and_then(Value::as_object);
    let Some(content) = content.filter(|c| !c.is_empty()) else {
        return (!body.is_empty()).then(|| format!("{what}: documented without a body, got one"));
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    let Some(media) = content.get(mime) else {
        return Some(format!(
            "{what}: content type {ct:?}, documented {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    if status.as_u16() >= 400 && mime != "application/problem+json" {
        return Some(format!(
            "{what}: an error that is not application/problem+json"
        ));
    }
    let schema = media.get("schema")?;
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("{what}: body is not JSON: {e}")),
    };
    doc.validate(schema, &value, "response")
        .err()
        .map(|e| format!("{what}: body does not match its schema: {e}"))
}

/// Runs every probe of every operation of `doc` against `base`; returns the failures.
async fn conform(
    name: &str,
    doc_value: &Value,
    client: &reqwest::Client,
    base: &str,
    creds: &Creds,
    sent: &mut usize,
) -> Vec<String> {
    let doc = Doc { root: doc_value };
    let mut rng = StdRng::seed_from_u64(SEED ^ name.len() as u64);
    let mut failures = Vec::new();
    let ops = operations(doc_value);
    assert!(!ops.is_empty(), "{name}: no operations");
    for op in &ops {
        let probes = probes(&doc, op, &mut rng);
        assert!(
            probes.iter().any(|p| p.valid == Some(false))
                || op.op.get("parameters").is_none() && op.op.get("requestBody").is_none(),
            "{name}: {} {}: inputs but no invalid probe drawn",
            op.method,
            op.template
        );
        for p in &probes {
            let answer = send(client, base, op, p, creds).await;
            *sent += 1;
            failures.extend(check(&doc, op, p, &answer));
        }
    }
    failures
}

/// The document the relay serves, which must be the one in `docs/openapi/`.
async fn published(relay: &TestRelay, name: &str) -> Value {
    let resp = relay
        .portal(
            Method::GET,
            &format!("/openapi/{name}.json"),
            None,
            crate::support::Body::None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{name}.json");
    let served: Value = serde_json::from_str(&resp.body).expect("document JSON");
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../docs/openapi/{name}.json"));
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("docs/openapi")).expect("JSON");
    assert_eq!(
        served, committed,
        "the served {name}.json differs from docs/openapi (regenerate with UPDATE_OPENAPI=1)"
    );
    served
}

async fn api_token(relay: &TestRelay, admin: &Session, scope: &str) -> String {
    let resp = relay
        .portal(
            Method::POST,
            "/api/v1/admin/tokens",
            Some(admin),
            crate::support::Body::Json(
                json!({"username": "admin", "name": scope, "scope": scope, "days": 1}),
            ),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    resp.json()["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn every_documented_operation_answers_only_what_its_openapi_document_states() {
    let relay = TestRelay::up(&[]).await;
    let portal_doc = published(&relay, "portal").await;
    let proxy_doc = published(&relay, "proxy").await;
    let admin = relay.portal_login("admin").await;
    let creds = Creds {
        admin_token: api_token(&relay, &admin, "admin").await,
        read_token: api_token(&relay, &admin, "read").await,
        session: admin,
    };
    let mut sent = 0;
    // The proxy first: the portal's admin operations may disable the demo client.
    let proxy_base = format!("https://localhost:{}", relay.proxy_addr().port());
    let mut failures = conform(
        "proxy",
        &proxy_doc,
        &relay.demo_client(),
        &proxy_base,
        &creds,
        &mut sent,
    )
    .await;
    let portal_base = format!("https://localhost:{}", relay.portal_addr().port());
    failures.extend(
        conform(
            "portal",
            &portal_doc,
            &relay.portal_raw_client(None),
            &portal_base,
            &creds,
            &mut sent,
        )
        .await,
    );
    assert!(sent > 200, "only {sent} requests drawn");
    assert!(
        failures.is_empty(),
        "{} of {sent} answers contradict the documents:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_generator_is_seeded() {
    let doc = json!({"components": {"schemas": {}}});
    let d = Doc { root: &doc };
    let s = json!({"type": "object", "required": ["a"], "additionalProperties": false,
        "properties": {"a": {"type": "string", "maxLength": 5}, "b": {"type": "integer", "minimum": 1, "maximum": 9}}});
    let draw = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        (d.valid(&s, &mut rng, "x"), d.invalid(&s, &mut rng, "x"))
    };
    assert_eq!(draw(7), draw(7));
    let (_, invalid) = draw(7);
    let labels: Vec<&str> = invalid.iter().map(|(l, _)| l.as_str()).collect();
    for expected in [
        "wrong type",
        "a missing",
        "unknown field",
        "a: too long",
        "b: below minimum",
        "b: above maximum",
        "b: not an integer",
    ] {
        assert!(
            labels.contains(&expected),
            "{expected} not drawn: {labels:?}"
        );
    }
}
