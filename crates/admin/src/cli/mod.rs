//! Command-line front ends (`msgrelay certs ...`, `msgrelay admin ...`); the binary mounts these
//! enums and passes the loaded configuration. Output is plain lines and tables; secrets are read from stdin
//! (from the terminal without echo when stdin is one).

mod admin;
mod certs;
pub(crate) mod table;

use std::io::{BufRead, IsTerminal, Write};

pub use admin::{
    run_admin, run_admin_with, AdminCommand, ClientCommand, MessagesCommand, TokenCommand,
    UserCommand,
};
pub use certs::{run_certs, run_certs_with, CertsCommand};

use msgrelay_core::Config;
use msgrelay_store::Store;

/// Standard input and output, or test doubles.
pub struct Io<'a> {
    pub input: &'a mut (dyn BufRead + Send),
    pub output: &'a mut (dyn Write + Send),
    /// Whether stdin is an interactive terminal: then secrets are read from the terminal with echo
    /// off (`rpassword`) instead of from `input`.
    pub interactive: bool,
}

/// The process's stdin (buffered) and stdout.
pub(crate) fn std_streams() -> (std::io::BufReader<std::io::Stdin>, std::io::Stdout, bool) {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    (
        std::io::BufReader::new(stdin),
        std::io::stdout(),
        interactive,
    )
}

/// Reads a secret: from the terminal without echo when stdin is one, else the first line of
/// stdin (pipes, for scripts). Empty input is refused with a hint on how to pipe it.
pub(crate) fn read_secret_line(
    io: &mut Io<'_>,
    what: &str,
    example: &str,
) -> anyhow::Result<String> {
    let line = if io.interactive {
        rpassword::prompt_password(format!("{what} (not shown; end with Enter): "))
            .map_err(|e| anyhow::anyhow!("cannot read the {what} from the terminal: {e}; or pipe it on stdin, e.g. `printf '%s\\n' 'long-password' | {example}`"))?
    } else {
        let mut line = String::new();
        io.input.read_line(&mut line)?;
        line
    };
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        anyhow::bail!("no {what} on standard input; pipe it on stdin, e.g. `printf '%s\\n' 'long-password' | {example}`");
    }
    Ok(secret)
}

/// Connects to the configured store (applying migrations), with an error that says what to check.
pub(crate) async fn connect_store(cfg: &Config) -> anyhow::Result<Store> {
    msgrelay_tls::install_crypto_provider();
    Store::connect(&cfg.database(), cfg.database.max_connections).await.map_err(|e| {
        anyhow::anyhow!("{e}; check `database.url` in the configuration (or --data-dir), then run `msgrelay init` if the data directory is new")
    })
}
