//! `/admin/clients`: clients with owner, domain, certificates and status; create, enable/disable;
//! issue (or renew) and revoke certificates through the same `CertAdmin` functions as
//! `msgrelay certs`. A new bundle is written under `clients/<id>/<timestamp>/` on the server;
//! its PKCS#12 file can be downloaded from the page that reports the issue.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use msgrelay_certs::{CertAdmin, KeyAlgorithm};
use msgrelay_core::ClientId;
use serde::Deserialize;

use super::users::{outcome, Done, NoFields};
use crate::actions::{bundle_dir, client_views, ClientView};
use crate::http::{AdminForm, PageAdmin, PageError, PageUser};
use crate::layout::{done_notice, Layout, When};
use crate::PortalState;

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ClientsPage {
    layout: Layout,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<String>,
    clients: Vec<ClientView>,
    owners: Vec<String>,
    issued: Option<Issued>,
}

/// What the page shows once after issuing a certificate.
pub struct Issued {
    pub client_id: String,
    pub serial: String,
    pub fingerprint: String,
    pub not_after: When,
    pub dir: String,
    pub bundle: String,
    pub password_file: Option<String>,
}

async fn render(
    s: &PortalState,
    u: &PageUser,
    notice: Option<&'static str>,
    error: Option<(StatusCode, String)>,
    issued: Option<Issued>,
) -> Result<Response, PageError> {
    let owners = s
        .store
        .list_users()
        .await?
        .into_iter()
        .filter(|x| !x.disabled)
        .map(|x| x.username)
        .collect();
    let status = error.as_ref().map(|e| e.0).unwrap_or(StatusCode::OK);
    let page = ClientsPage {
        layout: Layout::for_user("Clients", "clients", u),
        csrf: u.csrf.clone(),
        notice,
        error: error.map(|e| e.1),
        clients: client_views(s).await?,
        owners,
        issued,
    };
    Ok((status, Html(page.render()?)).into_response())
}

pub async fn page(
    State(s): State<PortalState>,
    PageAdmin(u): PageAdmin,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    render(&s, &u, done_notice(q.done.as_deref()), None, None).await
}

fn client_id(id: &str) -> Result<ClientId, PageError> {
    ClientId::parse(id.trim()).map_err(|e| {
        PageError::page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid input",
            format!("client id: {}", e.reason),
        )
    })
}

#[derive(Deserialize)]
pub struct CreateClient {
    client_id: String,
    owner: String,
    domain: String,
}

pub async fn create(
    State(s): State<PortalState>,
    AdminForm(u, f): AdminForm<CreateClient>,
) -> Result<Response, PageError> {
    let r = async {
        let id = client_id(&f.client_id)?;
        s.store
            .create_client(&id, f.owner.trim(), f.domain.trim())
            .await?;
        tracing::info!(admin = %u.user.username, client_id = %id, "client created");
        Ok(())
    }
    .await;
    outcome(r, "client-created", "/admin/clients", |st, e| {
        render(&s, &u, None, Some((st, e)), None)
    })
    .await
}

async fn set_active(
    s: &PortalState,
    u: &PageUser,
    id: &str,
    active: bool,
) -> Result<Response, PageError> {
    let r = async {
        let id = client_id(id)?;
        s.store.set_client_status(&id, active).await?;
        tracing::info!(admin = %u.user.username, client_id = %id, active, "client status set");
        Ok(())
    }
    .await;
    let done = if active {
        "client-enabled"
    } else {
        "client-disabled"
    };
    outcome(r, done, "/admin/clients", |st, e| {
        render(s, u, None, Some((st, e)), None)
    })
    .await
}

pub async fn disable(
    State(s): State<PortalState>,
    Path(id): Path<String>,
    AdminForm(u, NoFields {}): AdminForm<NoFields>,
) -> Result<Response, PageError> {
    set_active(&s, &u, &id, false).await
}

pub async fn enable(
    State(s): State<PortalState>,
    Path(id): Path<String>,
    AdminForm(u, NoFields {}): AdminForm<NoFields>,
) -> Result<Response, PageError> {
    set_active(&s, &u, &id, true).await
}

#[derive(Deserialize)]
pub struct IssueForm {
    days: Option<String>,
}

/// Where the portal writes a new bundle: a fresh directory per issue (bundles never overwrite).
/// Issues the client's first certificate or, if it has one, renews (both keep older ones valid).
pub async fn issue(
    State(s): State<PortalState>,
    Path(id): Path<String>,
    AdminForm(u, f): AdminForm<IssueForm>,
) -> Result<Response, PageError> {
    let r: Result<Issued, PageError> = async {
        let id = client_id(&id)?;
        let days = match f.days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => msgrelay_tls::pki::DEFAULT_CLIENT_DAYS,
            Some(d) => d.parse::<u32>().ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| PageError::page(StatusCode::UNPROCESSABLE_ENTITY, "Invalid input", "days: must be a number from 1 to 3650"))?,
        };
        let certs = CertAdmin::new((*s.pki).clone(), s.store.clone());
        let (dir, stamp) = bundle_dir(&s, &id);
        let has_cert = !s.store.list_certificates(Some(&id)).await?.is_empty();
        let bundle = if has_cert {
            certs.renew_with(&id, &dir, days, KeyAlgorithm::EcdsaP256, None).await
        } else {
            let client = s.store.get_client(&id).await?.ok_or_else(PageError::not_found)?;
            certs.issue_client(&id, &client.domain, days, &dir, KeyAlgorithm::EcdsaP256, None).await
        }
        .map_err(PageError::from)?;
        tracing::info!(admin = %u.user.username, client_id = %id, serial = %bundle.serial_hex, "client certificate issued from the portal");
        Ok(Issued {
            client_id: id.to_string(),
            serial: bundle.serial_hex,
            fingerprint: bundle.fingerprint,
            not_after: When::from_ms(bundle.not_after.timestamp_millis()),
            dir: bundle.dir.display().to_string(),
            bundle: stamp,
            password_file: bundle.p12_password_file.map(|p| p.display().to_string()),
        })
    }
    .await;
    match r {
        Ok(issued) => render(&s, &u, None, None, Some(issued)).await,
        Err(PageError::Page { status, detail, .. }) if status.is_client_error() => {
            render(&s, &u, None, Some((status, detail)), None).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    serial: String,
    reason: Option<String>,
}

pub async fn revoke(
    State(s): State<PortalState>,
    Path(id): Path<String>,
    AdminForm(u, f): AdminForm<RevokeForm>,
) -> Result<Response, PageError> {
    let r = async {
        let id = client_id(&id)?;
        // The serial must belong to the client named in the URL (no cross-client revocation by typo).
        let owned = s.store.list_certificates(Some(&id)).await?.iter().any(|c| c.serial_hex.eq_ignore_ascii_case(f.serial.trim()));
        if !owned {
            return Err(PageError::not_found());
        }
        let reason = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        CertAdmin::new((*s.pki).clone(), s.store.clone()).revoke_serial(&f.serial, reason).await.map_err(PageError::from)?;
        tracing::info!(admin = %u.user.username, client_id = %id, serial = %f.serial, "client certificate revoked from the portal");
        Ok(())
    }
    .await;
    outcome(r, "cert-revoked", "/admin/clients", |st, e| {
        render(&s, &u, None, Some((st, e)), None)
    })
    .await
}

#[derive(Deserialize)]
pub struct BundleForm {
    bundle: String,
}

/// The PKCS#12 file of a bundle the portal wrote (`clients/<id>/<timestamp>/client.p12`).
pub async fn download_p12(
    State(s): State<PortalState>,
    Path(id): Path<String>,
    AdminForm(u, f): AdminForm<BundleForm>,
) -> Result<Response, PageError> {
    let id = client_id(&id)?;
    let stamp_ok = !f.bundle.is_empty()
        && f.bundle.len() <= 32
        && f.bundle
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, 'T' | 'Z' | '.'));
    if !stamp_ok || f.bundle.contains("..") {
        return Err(PageError::not_found());
    }
    let path = s
        .cfg
        .path("clients")
        .join(id.as_str())
        .join(&f.bundle)
        .join("client.p12");
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| PageError::not_found())?;
    tracing::info!(admin = %u.user.username, client_id = %id, bundle = %f.bundle, "PKCS#12 bundle downloaded");
    let disposition = format!("attachment; filename=\"{}.p12\"", id.as_str());
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pkcs12".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
