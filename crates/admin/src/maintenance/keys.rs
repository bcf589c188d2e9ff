//! `msgrelay keys rotate`: a new at-rest key becomes current; older keys stay to read older rows.

use msgrelay_at_rest::AtRestKeys;
use msgrelay_core::Config;

use super::AT_REST_KEY_FILE;
use crate::AdminError;

/// Adds an at-rest key and makes it current; returns its id (never the key).
pub fn rotate_at_rest_key(cfg: &Config) -> Result<String, AdminError> {
    let path = cfg.path(AT_REST_KEY_FILE);
    if !path.exists() {
        // Rotating creates nothing: a missing file means a wrong --data-dir or a lost key, and
        // `init` would make a key that cannot read the stored messages.
        return Err(AdminError::NotFound(format!(
            "{} does not exist; check --data-dir/--config (restore keys/ from a backup if it was lost)",
            path.display()
        )));
    }
    Ok(AtRestKeys::rotate(&path)?)
}
