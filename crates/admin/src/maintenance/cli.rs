//! Printed output of the operations commands; the binary passes the loaded configuration and stdout.

use std::io::Write;
use std::path::Path;

use msgrelay_core::Config;

use super::{backup, doctor, restore, rotate_at_rest_key, RestoreOptions, Status};

/// `msgrelay keys rotate`: prints the new key id and what to do next (never key material).
pub fn run_keys_rotate(cfg: &Config, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let id = rotate_at_rest_key(cfg)?;
    writeln!(
        out,
        "new at-rest key: {id} (now current; older keys stay in {} to read older messages)",
        cfg.path(super::AT_REST_KEY_FILE).display()
    )?;
    writeln!(out, "running main servers load keys at start: restart `msgrelay server` (or `msgrelay up`) so new messages are encrypted with {id}")?;
    writeln!(out, "then back up keys/: `msgrelay backup --out DIR`")?;
    Ok(())
}

/// `msgrelay doctor`: returns false if any check failed (exit code 1).
pub async fn run_doctor(cfg: &Config, out: &mut (dyn Write + Send)) -> anyhow::Result<bool> {
    let checks = doctor(cfg, out).await?;
    Ok(!checks.iter().any(|c| c.status == Status::Fail))
}

/// `msgrelay backup --out DIR`.
pub async fn run_backup(
    cfg: &Config,
    out_dir: &Path,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let report = backup(cfg, out_dir).await?;
    writeln!(
        out,
        "backup written to {}: {} files, {} bytes, manifest {}",
        report.out_dir.display(),
        report.files,
        report.bytes,
        super::MANIFEST_FILE
    )?;
    writeln!(
        out,
        "it holds keys/: store it encrypted and away from database backups"
    )?;
    for step in &report.external_steps {
        writeln!(out, "NOT INCLUDED: {step}")?;
    }
    Ok(())
}

/// `msgrelay restore --from DIR [--force]`.
pub fn run_restore(
    cfg: &Config,
    from: &Path,
    force: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let restored = restore(cfg, from, RestoreOptions { force })?;
    writeln!(
        out,
        "restored {} files into {} (all SHA-256 checked)",
        restored.len(),
        cfg.data_dir.display()
    )?;
    if cfg!(windows) {
        writeln!(out, "next: give each service account access to the restored files (`icacls DATA_DIR /grant \"NT SERVICE\\msgrelay-proxy:(OI)(CI)M\" /T`, likewise for every msgrelay-* service), run `msgrelay doctor`, then deploy\\windows\\start.ps1")?;
    } else {
        writeln!(out, "next: fix ownership if needed (Linux: `chown -R msgrelay:msgrelay DATA_DIR`), run `msgrelay doctor`, then start the roles")?;
    }
    Ok(())
}
