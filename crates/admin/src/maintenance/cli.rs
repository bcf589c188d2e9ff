//! Printed output of the operations commands; the binary passes the loaded configuration and stdout.

use std::io::Write;

use msgrelay_core::Config;

use super::{
    backup, doctor, report, restore, rotate_at_rest_key, BackupOptions, RestoreOptions, Status,
};

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
    let checks = doctor(cfg).await;
    out.write_all(report(&checks).as_bytes())?;
    Ok(!checks.iter().any(|c| c.status == Status::Fail))
}

/// `msgrelay backup --out DIR [--keys-out DIR]`.
pub async fn run_backup(
    cfg: &Config,
    opts: &BackupOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let report = backup(cfg, opts).await?;
    writeln!(
        out,
        "backup written to {}: {} files, {} bytes, manifest {}",
        report.out_dir.display(),
        report.files,
        report.bytes,
        super::MANIFEST_FILE
    )?;
    if report.keys_dir != report.out_dir {
        writeln!(
            out,
            "keys, PKI and client bundles written to {} (with its own {}); `restore` needs it as --keys-from",
            report.keys_dir.display(),
            super::MANIFEST_FILE
        )?;
    }
    if let Some(w) = &report.shared_destination_warning {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// `msgrelay restore --from DIR [--keys-from DIR]`.
pub async fn run_restore(
    cfg: &Config,
    opts: &RestoreOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let report = restore(cfg, opts).await?;
    writeln!(
        out,
        "restored {} files into {} (all SHA-256 checked)",
        report.files,
        cfg.data_dir.display()
    )?;
    if let Some(db) = &report.mysql_database {
        writeln!(out, "restored the store into MySQL/MariaDB database `{db}`")?;
    }
    if let Some((n, prefix)) = &report.redis_keys {
        writeln!(
            out,
            "restored {n} queue keys into Redis under prefix \"{prefix}\" (messages leased when the backup was taken are due again)"
        )?;
    }
    if cfg!(windows) {
        writeln!(out, "next: give each service account access to the restored files (`icacls DATA_DIR /grant \"NT SERVICE\\msgrelay-proxy:(OI)(CI)M\" /T`, likewise for every msgrelay-* service), run `msgrelay doctor`, then deploy\\windows\\start.ps1")?;
    } else {
        writeln!(out, "next: fix ownership if needed (Linux: `chown -R msgrelay:msgrelay DATA_DIR`), run `msgrelay doctor`, then start the roles")?;
    }
    Ok(())
}
