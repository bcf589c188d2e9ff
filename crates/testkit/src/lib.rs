//! Test-only helpers (a dev-dependency of the test suites, never of a role).
//!
//! The one skip policy for suites that need something outside the process (a Redis or MariaDB
//! server, the `redis-server` binary, a browser): locally, a missing service skips the test and
//! says so on stderr (`SKIPPED: <what>: <why>`); with `MSGRELAY_TEST_REQUIRE_EXTERNAL=1`, which
//! `scripts/test.sh` (and so CI) sets, the test fails instead, so nothing is skipped silently.
//! `scripts/windows/suite.sh` follows the same variable.

use std::fmt::Display;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The variable that turns every skip into a failure.
pub const REQUIRE_ENV: &str = "MSGRELAY_TEST_REQUIRE_EXTERNAL";

/// Whether external services are required (CI).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Reports that `what` is unavailable: panics when services are required, else prints the skip.
/// The caller returns right after.
pub fn skip(what: &str, why: impl Display) {
    assert!(
        !required(),
        "{what} is required ({REQUIRE_ENV}=1) but unavailable: {why}"
    );
    eprintln!("SKIPPED: {what}: {why} (set {REQUIRE_ENV}=1 to make this a failure)");
}

/// `Ok(())` passes through as `true`; `Err(why)` is reported by [`skip`] and gives `false`:
/// `if !available("Redis", tcp_reachable(&url, 6379)) { return; }`.
pub fn available<E: Display>(what: &str, probe: Result<(), E>) -> bool {
    match probe {
        Ok(()) => true,
        Err(why) => {
            skip(what, why);
            false
        }
    }
}

/// Whether a program runs (`<program> <arg>` exits 0), e.g. `redis-server --version`.
pub fn command(program: &str, arg: &str) -> Result<(), String> {
    match std::process::Command::new(program).arg(arg).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`{program} {arg}` exited with {}", o.status)),
        Err(e) => Err(format!("`{program}` cannot be run: {e}")),
    }
}

/// Whether something listens at the host and port of `url` (`scheme://[user@]host[:port]/...`).
pub fn tcp_reachable(url: &str, default_port: u16) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let addr = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    let addrs = addr.to_socket_addrs().map_err(|e| format!("{addr}: {e}"))?;
    for a in addrs {
        if TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok() {
            return Ok(());
        }
    }
    Err(format!("nothing answers at {addr}"))
}

/// `cargo metadata` of the workspace at `manifest` (its root `Cargo.toml`): offline, with the
/// lock file as it is, and for this platform only (other platforms' crates are never downloaded
/// by a build here, and offline metadata needs every package's manifest).
pub fn cargo_metadata(manifest: &std::path::Path) -> serde_json::Value {
    use std::process::Command;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host, "--manifest-path"])
        .arg(manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_tell_reachable_from_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(tcp_reachable(&format!("redis://127.0.0.1:{port}/0"), 1).is_ok());
        assert!(tcp_reachable(&format!("mysql://root:pw@127.0.0.1:{port}"), 1).is_ok());
        drop(l);
        assert!(tcp_reachable(&format!("redis://127.0.0.1:{port}/0"), 1).is_err());
        assert!(command("definitely-not-a-command-msgrelay", "x").is_err());
    }

    #[test]
    fn a_probe_that_fails_is_a_skip_unless_required() {
        // Only meaningful when the variable is not set for this process (local runs); under CI
        // the same call must panic, which the second half checks.
        let outcome = std::panic::catch_unwind(|| available("nothing", Err::<(), _>("gone")));
        if required() {
            assert!(outcome.is_err(), "a required service must fail the test");
        } else {
            assert_eq!(outcome.ok(), Some(false));
        }
    }
}
