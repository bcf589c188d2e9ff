//! A private `mariadbd` on a free port with a temp data dir (root without a password, TCP only
//! from 127.0.0.1). Uses `--no-defaults` so the host's my.cnf (and its shared server) stay out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, kill_child, require_program, wait_for};

const MARIADBD: &str = "/usr/sbin/mariadbd";

/// A mariadbd process owned by one test; SIGKILLed on Drop, its data dir removed.
pub struct MariaDb {
    dir: tempfile::TempDir,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

fn user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "root".into())
}

impl MariaDb {
    /// A server with the defaults (innodb_flush_log_at_trx_commit = 1) plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        require_program(MARIADBD, "mariadb-server");
        require_program("mariadb-install-db", "mariadb-server");
        require_program("mariadb", "mariadb-client");
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg(format!("--user={}", user()))
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = Self {
            dir,
            port: 0,
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        for _ in 0..5 {
            db.port = free_port();
            if db.spawn() {
                return db;
            }
        }
        panic!("mariadbd did not start: {}", db.log_tail());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(MARIADBD);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.path("data").display()))
            .arg(format!("--socket={}", self.path("mysqld.sock").display()))
            .arg(format!("--pid-file={}", self.path("mysqld.pid").display()))
            .arg(format!("--log-error={}", self.path("error.log").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg("--skip-name-resolve")
            .arg(format!("--user={}", user()))
            .arg("--innodb-buffer-pool-size=128M")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn mariadbd");
        let port = self.port;
        let up = wait_for(
            "mariadbd to accept connections",
            Duration::from_secs(60),
            || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                query_port(port, "", "SELECT 1").ok().map(|_| true)
            },
        );
        if up {
            self.child = Some(child);
        } else {
            kill_child(&mut child);
        }
        up
    }

    /// `mysql://root@127.0.0.1:PORT/<db>`
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database (utf8mb4_bin, as deploy/sql/setup.sql does) and returns its URL.
    pub fn create_database(&self, db: &str) -> String {
        self.query(
            "",
            &format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        );
        self.url(db)
    }

    /// Runs SQL with the `mariadb` client (batch mode, no headers); tab-separated output.
    pub fn query(&self, db: &str, sql: &str) -> String {
        query_port(self.port, db, sql).unwrap_or_else(|e| panic!("query failed: {sql}: {e}"))
    }

    /// Runs SQL; `Err` with the client's message when the server is down or the SQL fails.
    pub fn try_query(&self, db: &str, sql: &str) -> Result<String, String> {
        query_port(self.port, db, sql)
    }

    /// Runs a SQL file with the `mariadb` client.
    pub fn source(&self, db: &str, file: &Path) {
        let sql = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        self.query(db, &sql);
    }

    /// Crashes the server (SIGKILL); InnoDB recovers committed transactions on restart.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
    }

    /// Starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "mariadbd did not restart on port {}: {}",
            self.port,
            self.log_tail()
        );
    }

    /// The server's error log, for assertion messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.path("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn query_port(port: u16, db: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new("mariadb");
    cmd.arg("--no-defaults")
        .arg("--protocol=TCP")
        .arg("-h127.0.0.1")
        .arg(format!("-P{port}"))
        .arg("-uroot")
        .arg("--connect-timeout=2")
        .arg("-N")
        .arg("-B")
        .arg("-e")
        .arg(sql);
    if !db.is_empty() {
        cmd.arg(db);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run mariadb: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}
