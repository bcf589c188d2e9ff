//! Turns a `DatabaseLocation` into connect options for sqlx's `Any` driver.
//!
//! The `Any` driver only accepts a URL, and sqlx hands the SQLite part of that URL back to
//! `SqliteConnectOptions` after percent-decoding it. A path pasted into a URL breaks on Windows
//! (`C:\…` parses as a host and port; a relative one fails with "invalid domain character"), so
//! the path is percent-encoded as a whole into an opaque `sqlite:` URL and the round trip is
//! proven by a test to give `SqliteConnectOptions::filename` the path unchanged.

use crate::{Dialect, StoreError};
use msgrelay_core::DatabaseLocation;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use sqlx::any::AnyConnectOptions;
use std::path::Path;
use std::str::FromStr;

/// The dialect and the `Any` options for `location`. SQLite files are opened read-write and
/// created when missing.
pub(crate) fn any_options(
    location: &DatabaseLocation,
) -> Result<(Dialect, AnyConnectOptions), StoreError> {
    let (dialect, url) = match location {
        DatabaseLocation::Sqlite(path) => (Dialect::Sqlite, sqlite_url(path)?),
        DatabaseLocation::Server(url) => {
            let url = match url.strip_prefix("mariadb:") {
                Some(rest) => format!("mysql:{rest}"),
                None if url.starts_with("mysql:") => url.clone(),
                None => {
                    return Err(StoreError::invalid(
                        "database.url",
                        "must start with sqlite:// or mysql://",
                    ))
                }
            };
            (Dialect::Mysql, url)
        }
    };
    // The error text could hold the URL's password; name the key instead.
    let options = AnyConnectOptions::from_str(&url)
        .map_err(|_| StoreError::invalid("database.url", "is not a valid database URL"))?;
    Ok((dialect, options))
}

/// `sqlite:<percent-encoded path>?mode=rwc`: an opaque URL (no `//`), so nothing in the path is
/// read as a host, port, query or fragment.
fn sqlite_url(path: &Path) -> Result<String, StoreError> {
    let text = path.to_str().ok_or_else(|| {
        StoreError::invalid("database.url", "the SQLite path must be valid Unicode")
    })?;
    Ok(format!(
        "sqlite:{}?mode=rwc",
        utf8_percent_encode(text, NON_ALPHANUMERIC)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::path::PathBuf;

    /// What sqlx's SQLite driver will open for these options.
    fn opened_file(options: &AnyConnectOptions) -> PathBuf {
        SqliteConnectOptions::try_from(options)
            .unwrap()
            .get_filename()
            .to_path_buf()
    }

    #[test]
    fn sqlite_paths_reach_sqlite_unchanged() {
        for path in [
            r"C:\msgrelay\data\msgrelay.db",
            r"C:\ProgramData\msgrelay\msgrelay.db",
            "C:/msgrelay/data/msgrelay.db",
            r"\\fileserver\share\relay data\msgrelay.db",
            r"data\msgrelay.db",
            r"D:\Relais données\a#b?c%20d&mode=ro.db",
            "/srv/relay/msgrelay.db",
            "relative/msgrelay.db",
        ] {
            let (dialect, options) =
                any_options(&DatabaseLocation::Sqlite(PathBuf::from(path))).unwrap();
            assert_eq!(dialect, Dialect::Sqlite);
            assert_eq!(opened_file(&options), PathBuf::from(path), "{path}");
            let sqlite = SqliteConnectOptions::try_from(&options).unwrap();
            assert!(!sqlite.get_filename().as_os_str().is_empty());
        }
    }

    #[test]
    fn server_urls_pick_mysql_and_never_echo_the_password() {
        let (d, _) = any_options(&DatabaseLocation::Server("mysql://root@h/db".into())).unwrap();
        assert_eq!(d, Dialect::Mysql);
        let (d, o) =
            any_options(&DatabaseLocation::Server("mariadb://root@h:3306/db".into())).unwrap();
        assert_eq!(d, Dialect::Mysql);
        assert_eq!(o.database_url.scheme(), "mysql");
        let e = any_options(&DatabaseLocation::Server(
            "postgres://u:hunter2@h/db".into(),
        ))
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
