//! What every page's layout needs (title, navigation, logout form) and small view helpers.

use chrono::{TimeZone, Utc};

/// Appended to asset URLs so a new release is fetched despite the long cache lifetime.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The logged-in user as the navigation bar shows it.
#[derive(Debug, Clone)]
pub struct NavUser {
    pub username: String,
    pub is_admin: bool,
    /// For the logout form.
    pub csrf: String,
}

/// Fields of `base.html`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    /// Which navigation entry is current (`messages`, `admin`, `users`, …).
    pub active: &'static str,
    pub user: Option<NavUser>,
    pub asset_version: &'static str,
}

impl Layout {
    pub fn anonymous(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            active: "",
            user: None,
            asset_version: ASSET_VERSION,
        }
    }
}

/// A point in time: `iso` for `<time datetime>` (the browser shows it in its own time zone),
/// `text` as shown without JavaScript (UTC).
#[derive(Debug, Clone)]
pub struct When {
    pub iso: String,
    pub text: String,
}

impl When {
    pub fn from_ms(ms: i64) -> Self {
        match Utc.timestamp_millis_opt(ms).single() {
            Some(t) => Self {
                iso: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                text: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            },
            None => Self {
                iso: String::new(),
                text: "?".into(),
            },
        }
    }

    pub fn opt(ms: Option<i64>) -> Option<Self> {
        ms.map(Self::from_ms)
    }
}

/// A one-line notice above a page's content after a successful action (`?done=<code>`), from a
/// fixed list so that nobody can make the portal display text of their choosing.
pub fn done_notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "user-created" => "User created.",
        "role-set" => "Role changed.",
        "user-disabled" => "User disabled; their sessions have ended.",
        "user-enabled" => "User enabled.",
        "password-reset" => "Password reset; the user's sessions have ended.",
        "client-created" => "Client created. Issue a certificate for it below.",
        "client-disabled" => {
            "Client disabled: the proxy refuses its certificates from its next registry refresh."
        }
        "client-enabled" => "Client enabled.",
        "cert-revoked" => "Certificate revoked and the CRL re-signed.",
        "token-revoked" => "API token revoked.",
        "retried" => "Failed messages put back into the queue.",
        "purged" => "Old delivered messages deleted.",
        "analyzed" => "Database statistics refreshed.",
        _ => return None,
    })
}
