//! A MySQL/MariaDB store in a backup: a logical dump with `mariadb-dump`/`mysqldump
//! --single-transaction` (one consistent InnoDB snapshot, no table locks), replayed with the
//! `mariadb`/`mysql` client. The password never reaches a command line or the environment: both
//! tools read it from a `--defaults-extra-file` written owner-only into a private temp directory
//! that is removed when the tool exits.
//!
//! The dump tools rather than an export through sqlx: they are what the server's vendor supports
//! for a consistent logical copy (every column type, charset and index exactly as created), their
//! output can be checked and replayed by hand with standard tools, and a newer msgrelay needs no
//! export code of its own to keep in step with the schema.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use msgrelay_core::Config;

use crate::AdminError;

/// What `database.url` says, split for the client tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MysqlTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// `ssl-mode` of the URL, lowercase (`disabled`, `preferred`, `required`, `verify_ca`, `verify_identity`).
    pub ssl_mode: Option<String>,
    pub ssl_ca: Option<String>,
    pub socket: Option<String>,
}

impl MysqlTarget {
    /// Parses a `mysql://` / `mariadb://` URL as sqlx does (percent-decoded user and password).
    pub fn parse(url: &str) -> Result<Self, AdminError> {
        let bad = |why: &str| AdminError::Invalid(format!("database.url: {why}"));
        // The parser's error text could echo the URL, password included: name the key only.
        let u = url::Url::parse(url).map_err(|_| bad("is not a valid URL"))?;
        if !matches!(u.scheme(), "mysql" | "mariadb") {
            return Err(bad("must start with mysql:// or mariadb://"));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("user or password is not valid UTF-8"))
        };
        let database = decode(u.path().trim_start_matches('/'))?;
        if database.is_empty() {
            return Err(bad("names no database (mysql://user@host/DATABASE)"));
        }
        let mut t = MysqlTarget {
            host: u.host_str().unwrap_or("localhost").to_owned(),
            port: u.port().unwrap_or(3306),
            user: decode(u.username())?,
            password: u.password().map(decode).transpose()?,
            database,
            ssl_mode: None,
            ssl_ca: None,
            socket: None,
        };
        if t.user.is_empty() {
            t.user = "root".into();
        }
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "ssl-mode" | "sslmode" => t.ssl_mode = Some(v.to_ascii_lowercase()),
                "ssl-ca" => t.ssl_ca = Some(v.into_owned()),
                "socket" => t.socket = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(t)
    }

    /// The `[client]` option file both tools read: credentials, address and TLS.
    fn option_file(&self, mariadb: bool) -> String {
        let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut s = String::from("[client]\n");
        s += &format!("user={}\n", quote(&self.user));
        if let Some(p) = &self.password {
            s += &format!("password={}\n", quote(p));
        }
        s += &format!("host={}\nport={}\n", quote(&self.host), self.port);
        if let Some(sock) = &self.socket {
            s += &format!("socket={}\n", quote(sock));
        }
        if let Some(ca) = &self.ssl_ca {
            s += &format!("ssl-ca={}\n", quote(ca));
        }
        match (self.ssl_mode.as_deref(), mariadb) {
            (Some("disabled"), true) => s += "skip-ssl\n",
            (Some("required"), true) => s += "ssl\n",
            (Some("verify_ca" | "verify_identity"), true) => s += "ssl\nssl-verify-server-cert\n",
            (Some(mode), false) if mode != "preferred" => {
                s += &format!("ssl-mode={}\n", mode.to_ascii_uppercase())
            }
            _ => {}
        }
        s
    }
}

/// The dump tool and the client next to it.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub dump: PathBuf,
    pub client: PathBuf,
    /// MariaDB's tools (option names differ from MySQL's).
    pub mariadb: bool,
}

fn exe(name: &str) -> String {
    if cfg!(windows) {
        format!("{name}.exe")
    } else {
        name.to_owned()
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(exe(name)))
        .find(|p| p.is_file())
}

/// `backup.mysqldump_path`, else `mariadb-dump` or `mysqldump` on PATH; the client is `mariadb`
/// or `mysql` in the same directory, else on PATH.
pub(crate) fn find_tools(cfg: &Config) -> Result<Tools, AdminError> {
    let dump = if cfg.backup.mysqldump_path.as_os_str().is_empty() {
        on_path("mariadb-dump")
            .or_else(|| on_path("mysqldump"))
            .ok_or_else(|| {
                AdminError::NotFound(
                    "neither mariadb-dump nor mysqldump is on PATH: install the MariaDB/MySQL client tools or set backup.mysqldump_path".into(),
                )
            })?
    } else {
        let p = cfg.backup.mysqldump_path.clone();
        if !p.is_file() {
            return Err(AdminError::NotFound(format!(
                "backup.mysqldump_path {} does not exist",
                p.display()
            )));
        }
        p
    };
    let version = Command::new(&dump)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(AdminError::io("running", &dump))?;
    let mariadb = String::from_utf8_lossy(&version.stdout).contains("MariaDB")
        || dump
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("mariadb"));
    let dir = dump.parent().map(Path::to_path_buf).unwrap_or_default();
    let names: [&str; 2] = if mariadb {
        ["mariadb", "mysql"]
    } else {
        ["mysql", "mariadb"]
    };
    let client = names
        .iter()
        .map(|n| dir.join(exe(n)))
        .find(|p| p.is_file())
        .or_else(|| names.iter().find_map(|n| on_path(n)))
        .ok_or_else(|| {
            AdminError::NotFound(format!(
                "no mariadb or mysql client next to {} or on PATH",
                dump.display()
            ))
        })?;
    Ok(Tools {
        dump,
        client,
        mariadb,
    })
}

/// A private temp directory holding the option file; removed on drop.
struct OptionFile {
    _dir: tempfile::TempDir,
    arg: String,
}

fn option_file(target: &MysqlTarget, mariadb: bool) -> Result<OptionFile, AdminError> {
    let dir = tempfile::Builder::new()
        .prefix("msgrelay-mysql-")
        .tempdir()
        .map_err(|e| AdminError::io("creating", &std::env::temp_dir())(e))?;
    // tempfile creates the directory 0700 on Unix; on Windows it inherits %TEMP%'s ACL.
    #[cfg(windows)]
    msgrelay_files::windows_acl::restrict_to_owner(dir.path())
        .map_err(AdminError::io("restricting", dir.path()))?;
    let path = dir.path().join("client.cnf");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .map_err(AdminError::io("creating", &path))?;
    f.write_all(target.option_file(mariadb).as_bytes())
        .map_err(AdminError::io("writing", &path))?;
    drop(f);
    super::files::make_owner_only(&path)?;
    let arg = format!("--defaults-extra-file={}", path.display());
    Ok(OptionFile { _dir: dir, arg })
}

/// The tool's stderr, trimmed, for an error message (it never holds the password: the tools do
/// not print option values).
fn failure(tool: &Path, out: &std::process::Output) -> AdminError {
    AdminError::Invalid(format!(
        "{} failed ({}): {}",
        tool.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Dumps the store's database into `dest` (one consistent snapshot).
pub(crate) fn dump(tools: &Tools, target: &MysqlTarget, dest: &Path) -> Result<(), AdminError> {
    let opt = option_file(target, tools.mariadb)?;
    let mut cmd = Command::new(&tools.dump);
    // --defaults-extra-file must come first.
    cmd.arg(&opt.arg)
        .args([
            "--single-transaction",
            "--skip-lock-tables",
            "--no-tablespaces",
            "--hex-blob",
            "--triggers",
            "--default-character-set=utf8mb4",
        ])
        .arg(format!("--result-file={}", dest.display()));
    if !tools.mariadb {
        cmd.arg("--set-gtid-purged=OFF");
    }
    cmd.arg("--").arg(&target.database).stdin(Stdio::null());
    let out = cmd
        .output()
        .map_err(AdminError::io("running", &tools.dump))?;
    if !out.status.success() {
        return Err(failure(&tools.dump, &out));
    }
    super::files::make_owner_only(dest)
}

/// Runs one query with the client; tab-separated output.
fn query(tools: &Tools, target: &MysqlTarget, sql: &str) -> Result<String, AdminError> {
    let opt = option_file(target, tools.mariadb)?;
    let out = Command::new(&tools.client)
        .arg(&opt.arg)
        .args(["--batch", "--skip-column-names", "-e", sql])
        .arg("--")
        .arg(&target.database)
        .stdin(Stdio::null())
        .output()
        .map_err(AdminError::io("running", &tools.client))?;
    if !out.status.success() {
        return Err(failure(&tools.client, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// How many tables the target database holds (restore needs none).
pub(crate) fn table_count(tools: &Tools, target: &MysqlTarget) -> Result<u64, AdminError> {
    let n = query(
        tools,
        target,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()",
    )?;
    n.parse()
        .map_err(|_| AdminError::Invalid(format!("unexpected answer counting tables: {n}")))
}

/// Replays a dump into the (empty) target database.
pub(crate) fn load(tools: &Tools, target: &MysqlTarget, dump: &Path) -> Result<(), AdminError> {
    let opt = option_file(target, tools.mariadb)?;
    let input = std::fs::File::open(dump).map_err(AdminError::io("reading", dump))?;
    let out = Command::new(&tools.client)
        .arg(&opt.arg)
        .args(["--batch", "--default-character-set=utf8mb4"])
        .arg("--")
        .arg(&target.database)
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(AdminError::io("running", &tools.client))?;
    if !out.status.success() {
        return Err(failure(&tools.client, &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_split_and_the_password_goes_only_to_the_option_file() {
        let t = MysqlTarget::parse(
            "mysql://relay%40x:p%22a%5Css@db.example:3307/msgrelay?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.user.as_str(),
                t.database.as_str()
            ),
            ("db.example", 3307, "relay@x", "msgrelay")
        );
        assert_eq!(t.password.as_deref(), Some("p\"a\\ss"));
        let maria = t.option_file(true);
        assert!(maria.contains("password=\"p\\\"a\\\\ss\"\n"), "{maria}");
        assert!(maria.contains("ssl-verify-server-cert"), "{maria}");
        assert!(maria.contains("ssl-ca=\"/etc/ca.pem\""), "{maria}");
        assert!(t.option_file(false).contains("ssl-mode=VERIFY_IDENTITY"));
        let d = MysqlTarget::parse("mariadb://root@127.0.0.1/db").unwrap();
        assert_eq!((d.port, d.password), (3306, None));
        assert!(MysqlTarget::parse("mysql://root@h/").is_err());
        let e = MysqlTarget::parse("mysql://u:secret@h:x/db").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn the_option_file_is_owner_only_and_removed_after_use() {
        use std::os::unix::fs::PermissionsExt;
        let t = MysqlTarget::parse("mysql://u:pw@h/db").unwrap();
        let f = option_file(&t, true).unwrap();
        let path = PathBuf::from(f.arg.trim_start_matches("--defaults-extra-file="));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("password=\"pw\""));
        drop(f);
        assert!(!path.exists());
    }
}
