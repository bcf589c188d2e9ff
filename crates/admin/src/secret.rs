//! The owner-only bootstrap credentials file.

use std::io::Write;
use std::path::Path;

use crate::AdminError;

/// Opens `path` for appending, creating it owner-only (0600 on Unix from the first byte, a
/// protected DACL on Windows); an existing file is tightened the same way (`msgrelay-files`).
fn open_owner_only_append(path: &Path) -> Result<std::fs::File, AdminError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        msgrelay_files::create_private_dir(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path).map_err(AdminError::io("opening", path))?;
    msgrelay_files::make_owner_only(path)?;
    Ok(file)
}

/// Appends `user=<name> role=<role> password=<pw>` lines under a dated header and fsyncs.
pub(crate) fn append_credentials(
    path: &Path,
    entries: &[(String, &'static str, String)],
) -> Result<(), AdminError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut text = format!(
        "# msgrelay init {}: portal accounts created; change these passwords, then delete this file\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    for (user, role, password) in entries {
        text.push_str(&format!("user={user} role={role} password={password}\n"));
    }
    let mut file = open_owner_only_append(path)?;
    file.write_all(text.as_bytes())
        .map_err(AdminError::io("writing", path))?;
    file.sync_all().map_err(AdminError::io("syncing", path))?;
    Ok(())
}

/// The most recent password recorded for `username` in a bootstrap credentials file, if any.
pub fn read_bootstrap_password(path: &Path, username: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let user_field = format!("user={username}");
    text.lines()
        .rev()
        .filter(|l| l.split_whitespace().next() == Some(user_field.as_str()))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("password="))
        })
        .next()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds.txt");
        append_credentials(&p, &[("admin".into(), "admin", "pw-one".into())]).unwrap();
        append_credentials(
            &p,
            &[
                ("demo".into(), "user", "pw-two".into()),
                ("admin".into(), "admin", "pw-three".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            read_bootstrap_password(&p, "admin").as_deref(),
            Some("pw-three")
        );
        assert_eq!(
            read_bootstrap_password(&p, "demo").as_deref(),
            Some("pw-two")
        );
        assert_eq!(read_bootstrap_password(&p, "nobody"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
