//! `msgrelay admin ...`: users, clients, API tokens and failed messages.

use msgrelay_core::{ClientId, Config, MessageId, Role};
use msgrelay_queue::Queue;
use msgrelay_store::{Store, TokenScope};

use super::{connect_store, read_secret_line, std_streams, table, Io};

/// `msgrelay admin` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Portal users.
    #[command(subcommand)]
    User(UserCommand),
    /// Client systems (each submits with its own certificate).
    #[command(subcommand)]
    Client(ClientCommand),
    /// API tokens for `Authorization: Bearer`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Failed messages.
    #[command(subcommand)]
    Messages(MessagesCommand),
}

fn parse_scope(s: &str) -> Result<TokenScope, String> {
    TokenScope::parse(s).map_err(|e| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|e| e.reason)
}

/// `msgrelay admin user ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin (first line, at least 12 characters).
    Create {
        /// The new user's login name (at most 64 bytes).
        #[arg(long)]
        username: String,
        /// user | admin
        #[arg(long, value_parser = parse_role, default_value = "user")]
        role: Role,
    },
    /// Disable a user (ends their sessions; their API tokens stop working).
    Disable {
        /// The user to disable.
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        /// The user to enable.
        #[arg(long)]
        username: String,
    },
    /// Set a new password (read from stdin) and end the user's sessions.
    ResetPassword {
        /// The user whose password is reset.
        #[arg(long)]
        username: String,
    },
    /// List users.
    List,
}

/// `msgrelay admin client ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// Create a client owned by a user, for one proxy domain.
    Create {
        /// The new client's id (letters, digits, `-`, `_`; it names the certificate bundle).
        #[arg(long)]
        client_id: String,
        /// Username of the owner (sees the client's messages in the portal).
        #[arg(long)]
        owner: String,
        /// The proxy domain the client sends to (one of `proxy.domains`).
        #[arg(long)]
        domain: String,
    },
    /// Disable a client: all its certificates are refused.
    Disable {
        /// The client to disable.
        #[arg(long)]
        client_id: String,
    },
    /// Enable a disabled client.
    Enable {
        /// The client to enable.
        #[arg(long)]
        client_id: String,
    },
    /// List clients.
    List,
}

/// `msgrelay admin token ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; it is printed once.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        username: String,
        /// A label to recognise the token by in `token list`.
        #[arg(long, default_value = "cli")]
        name: String,
        /// read (the message API) | admin (also the admin API; administrators only)
        #[arg(long, value_parser = parse_scope, default_value = "read")]
        scope: TokenScope,
        /// Days until the token expires (1-3650).
        #[arg(long, default_value_t = msgrelay_store::DEFAULT_TOKEN_DAYS)]
        days: u32,
    },
    /// Revoke a token by id (see `token list`).
    Revoke {
        /// The token's id, from `msgrelay admin token list`.
        #[arg(long)]
        id: i64,
    },
    /// List tokens (never the tokens themselves).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        username: Option<String>,
    },
}

/// `msgrelay admin messages ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MessagesCommand {
    /// Put failed messages back in the queue for delivery now.
    Retry {
        /// Message ids (repeatable).
        #[arg(long = "id", num_args = 1.., required_unless_present = "all_failed", conflicts_with = "all_failed")]
        ids: Vec<String>,
        /// Every failed message.
        #[arg(long)]
        all_failed: bool,
    },
}

/// Runs an `admin` subcommand with the process's stdin/stdout.
pub async fn run_admin(cmd: AdminCommand, cfg: &Config) -> anyhow::Result<()> {
    let (mut input, mut output, interactive) = std_streams();
    run_admin_with(
        cmd,
        cfg,
        Io {
            input: &mut input,
            output: &mut output,
            interactive,
        },
    )
    .await
}

/// Runs an `admin` subcommand on the given streams.
pub async fn run_admin_with(cmd: AdminCommand, cfg: &Config, mut io: Io<'_>) -> anyhow::Result<()> {
    if let AdminCommand::Messages(MessagesCommand::Retry { ids, all_failed }) = cmd {
        return retry(cfg, &ids, all_failed, &mut io).await;
    }
    let store = connect_store(cfg).await?;
    let result = match cmd {
        AdminCommand::User(c) => user(c, &store, &mut io).await,
        AdminCommand::Client(c) => client(c, &store, &mut io).await,
        AdminCommand::Token(c) => token(c, &store, &mut io).await,
        AdminCommand::Messages(_) => unreachable!("handled above"),
    };
    store.close().await;
    result
}

async fn user(cmd: UserCommand, store: &Store, io: &mut Io<'_>) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create { username, role } => {
            let example = format!(
                "msgrelay admin user create --username {username} --role {}",
                role.as_str()
            );
            let password = read_secret_line(io, "password", &example)?;
            store.create_user(&username, &password, role).await?;
            writeln!(
                io.output,
                "user {username} created (role {})",
                role.as_str()
            )?;
        }
        UserCommand::Disable { username } => {
            store.set_user_disabled(&username, true).await?;
            writeln!(io.output, "user {username} disabled; their sessions ended")?;
        }
        UserCommand::Enable { username } => {
            store.set_user_disabled(&username, false).await?;
            writeln!(io.output, "user {username} enabled")?;
        }
        UserCommand::ResetPassword { username } => {
            let example = format!("msgrelay admin user reset-password --username {username}");
            let password = read_secret_line(io, "new password", &example)?;
            store.reset_password(&username, &password).await?;
            writeln!(
                io.output,
                "password of {username} changed; their sessions ended"
            )?;
        }
        UserCommand::List => {
            let rows: Vec<Vec<String>> = store
                .list_users()
                .await?
                .into_iter()
                .map(|u| {
                    vec![
                        u.username,
                        u.role.as_str().into(),
                        if u.disabled { "disabled" } else { "active" }.into(),
                        table::ms(Some(u.created_at_ms)),
                        table::ms(u.last_login_at_ms),
                    ]
                })
                .collect();
            io.output.write_all(
                table::render(
                    &[
                        "USERNAME",
                        "ROLE",
                        "STATUS",
                        "CREATED (UTC)",
                        "LAST LOGIN (UTC)",
                    ],
                    &rows,
                )
                .as_bytes(),
            )?;
        }
    }
    Ok(())
}

fn parse_client_id(s: &str) -> anyhow::Result<ClientId> {
    ClientId::parse(s).map_err(|e| anyhow::anyhow!("--client-id: {e}"))
}

async fn client(cmd: ClientCommand, store: &Store, io: &mut Io<'_>) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create {
            client_id,
            owner,
            domain,
        } => {
            let id = parse_client_id(&client_id)?;
            let c = store.create_client(&id, &owner, &domain).await?;
            writeln!(
                io.output,
                "client {} created (owner {}, domain {})",
                c.client_id, c.owner_username, c.domain
            )?;
            writeln!(
                io.output,
                "next: `msgrelay certs issue-client --client-id {} --domain {} --out DIR`",
                c.client_id, c.domain
            )?;
        }
        ClientCommand::Disable { client_id } => {
            store
                .set_client_status(&parse_client_id(&client_id)?, false)
                .await?;
            writeln!(io.output, "client {client_id} disabled; proxies refuse its certificates within `proxy.revocation_refresh_secs`")?;
        }
        ClientCommand::Enable { client_id } => {
            store
                .set_client_status(&parse_client_id(&client_id)?, true)
                .await?;
            writeln!(io.output, "client {client_id} enabled")?;
        }
        ClientCommand::List => {
            let rows: Vec<Vec<String>> = store
                .list_clients(None)
                .await?
                .into_iter()
                .map(|c| {
                    vec![
                        c.client_id.to_string(),
                        c.owner_username,
                        c.domain,
                        if c.active { "active" } else { "disabled" }.into(),
                        c.cert_fingerprint.unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            io.output.write_all(
                table::render(
                    &[
                        "CLIENT",
                        "OWNER",
                        "DOMAIN",
                        "STATUS",
                        "CURRENT CERTIFICATE (SHA-256)",
                    ],
                    &rows,
                )
                .as_bytes(),
            )?;
        }
    }
    Ok(())
}

async fn token(cmd: TokenCommand, store: &Store, io: &mut Io<'_>) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            username,
            name,
            scope,
            days,
        } => {
            let t = store
                .create_scoped_api_token(&username, &name, scope, Some(days))
                .await?;
            writeln!(
                io.output,
                "API token {} ({name}) for {username}, scope {}, expires {} UTC; shown only now, store it safely:",
                t.id,
                scope.as_str(),
                table::ms(Some(t.expires_at_ms)),
            )?;
            writeln!(io.output, "{}", t.token)?;
        }
        TokenCommand::Revoke { id } => {
            store.revoke_api_token(id).await?;
            writeln!(io.output, "API token {id} revoked")?;
        }
        TokenCommand::List { username } => {
            let user_id = match username {
                Some(u) => Some(
                    store
                        .get_user_by_name(&u)
                        .await?
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "user {u} does not exist; see `msgrelay admin user list`"
                            )
                        })?
                        .id,
                ),
                None => None,
            };
            let now = msgrelay_core::now_ms();
            let rows: Vec<Vec<String>> = store
                .list_api_tokens(user_id)
                .await?
                .into_iter()
                .map(|t| {
                    let status = if t.revoked_at_ms.is_some() {
                        "revoked"
                    } else if !t.is_active(now) {
                        "expired"
                    } else {
                        "active"
                    };
                    vec![
                        t.id.to_string(),
                        t.username,
                        t.name,
                        t.scope.as_str().into(),
                        table::ms(Some(t.created_at_ms)),
                        table::ms(Some(t.expires_at_ms)),
                        table::ms(t.last_used_at_ms),
                        status.into(),
                    ]
                })
                .collect();
            io.output.write_all(
                table::render(
                    &[
                        "ID",
                        "USER",
                        "NAME",
                        "SCOPE",
                        "CREATED (UTC)",
                        "EXPIRES (UTC)",
                        "LAST USED (UTC)",
                        "STATUS",
                    ],
                    &rows,
                )
                .as_bytes(),
            )?;
        }
    }
    Ok(())
}

/// Failed messages back to `queued`: in the queue (which delivers them) and in the store (which shows them).
async fn retry(
    cfg: &Config,
    ids: &[String],
    all_failed: bool,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let queue = Queue::connect(&cfg.queue, &cfg.data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; check the `queue` section of the configuration"))?;
    let ids: Vec<MessageId> = if all_failed {
        // Page through the dead letters so that the store is told exactly which ones moved.
        let mut all = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = queue.list_failed(10_000).await?;
            if page.is_empty() {
                break;
            }
            let page: Vec<MessageId> = page
                .into_iter()
                .map(|f| f.id)
                .filter(|id| seen.insert(*id))
                .collect();
            if page.is_empty() {
                break;
            }
            queue.retry_failed(Some(&page)).await?;
            all.extend(page);
        }
        all
    } else {
        let ids = ids
            .iter()
            .map(|s| {
                MessageId::parse(s)
                    .map_err(|_| anyhow::anyhow!("--id {s:?} is not a message id (UUID)"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let moved = queue.retry_failed(Some(&ids)).await?;
        if moved < ids.len() as u64 {
            writeln!(io.output, "{} of the given messages were not failed in the queue (already delivered, queued or unknown)", ids.len() as u64 - moved)?;
        }
        ids
    };
    let store = connect_store(cfg).await?;
    let requeued = store.requeue_failed(&ids).await;
    store.close().await;
    let requeued = requeued?;
    writeln!(
        io.output,
        "{} message(s) queued for delivery again ({} marked queued in the store)",
        ids.len(),
        requeued
    )?;
    Ok(())
}
