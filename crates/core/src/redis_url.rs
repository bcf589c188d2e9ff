//! `queue.redis_url`, parsed once: one server, a Sentinel-managed primary, or a Redis Cluster.
//!
//! The accepted forms (and nothing else):
//! - `redis://[user:password@]host[:port][/<db>]` and `rediss://…` (TLS);
//! - `redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/<db>]` and
//!   `rediss+sentinel://…`;
//! - `redis+cluster://[user:password@]host1:port,host2:port` and `rediss+cluster://…`.
//!
//! Error messages never contain the password; `Debug` hides it.

use percent_encoding::percent_decode_str;

/// How the Redis servers behind the URL are organised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server (it may have replicas, but the relay talks to this one only).
    Single,
    /// Sentinels that name the current primary of `master`; the listed hosts are the sentinels.
    Sentinel { master: String },
    /// A Redis Cluster; the listed hosts are seed nodes.
    Cluster,
}

/// A parsed `queue.redis_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub topology: RedisTopology,
    /// `rediss…`: TLS to every server (and to the sentinels).
    pub tls: bool,
    /// Host and port of the server, sentinels or seed nodes, in the given order.
    pub hosts: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Database number (always 0 on a cluster).
    pub db: i64,
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisUrl")
            .field("topology", &self.topology)
            .field("tls", &self.tls)
            .field("hosts", &self.hosts)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .finish()
    }
}

const SCHEMES: &[(&str, bool, u8)] = &[
    ("redis", false, 0),
    ("rediss", true, 0),
    ("redis+sentinel", false, 1),
    ("rediss+sentinel", true, 1),
    ("redis+cluster", false, 2),
    ("rediss+cluster", true, 2),
];

impl RedisUrl {
    /// Parses one of the accepted forms; the error is a reason fit to follow the key name.
    pub fn parse(url: &str) -> Result<Self, String> {
        let forms = "redis://[user:password@]host[:port][/db], rediss://…, \
                     redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/<db>], \
                     rediss+sentinel://…, redis+cluster://[user:password@]host1:port,host2:port or rediss+cluster://…";
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("must be one of {forms}"));
        };
        let Some(&(_, tls, kind)) = SCHEMES.iter().find(|(s, _, _)| *s == scheme) else {
            return Err(format!("scheme '{scheme}' is not one of {forms}"));
        };
        // The last '@' ends the user info (a password may contain '/', '?' or '#' unencoded);
        // nothing after it is secret, so the messages below may quote it.
        let (userinfo, after) = match rest.rsplit_once('@') {
            Some((u, a)) => (Some(u), a),
            None => (None, rest),
        };
        if after.contains(['?', '#']) {
            return Err(
                "must not have a query or fragment (certificate checks cannot be turned off; \
                 set queue.redis_ca_file for a private CA)"
                    .into(),
            );
        }
        let (hostlist, path) = match after.find('/') {
            Some(i) => after.split_at(i),
            None => (after, ""),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                let decode = |part: &str, what: &str| -> Result<String, String> {
                    percent_decode_str(part)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| format!("the {what} is not UTF-8 after percent-decoding"))
                };
                let user = decode(user, "user name")?;
                let pass = pass.map(|p| decode(p, "password")).transpose()?;
                (
                    (!user.is_empty()).then_some(user),
                    pass.filter(|p| !p.is_empty()),
                )
            }
        };
        if username.is_some() && password.is_none() {
            return Err("a user name needs a password (user:password@)".into());
        }
        let default_port = if kind == 1 { 26379 } else { 6379 };
        let hosts = hostlist
            .split(',')
            .map(|h| parse_host(h, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        if kind == 0 && hosts.len() != 1 {
            return Err(format!("{scheme}:// takes exactly one host; use redis+sentinel:// or redis+cluster:// for several"));
        }
        let segments: Vec<&str> = path
            .strip_prefix('/')
            .map(|p| p.split('/').collect())
            .unwrap_or_default();
        let (topology, db) = match kind {
            0 => match segments.as_slice() {
                [] | [""] => (RedisTopology::Single, 0),
                [db] => (RedisTopology::Single, parse_db(db)?),
                _ => return Err("the path is the database number only (/<db>)".into()),
            },
            1 => {
                let (master, db) = match segments.as_slice() {
                    [m] => (*m, 0),
                    [m, db] => (*m, parse_db(db)?),
                    _ => {
                        return Err(
                            "name the master after the sentinels: /<master-name>[/<db>]".into()
                        )
                    }
                };
                let master_ok = !master.is_empty()
                    && master.len() <= 128
                    && master
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !master_ok {
                    return Err(format!(
                        "master name '{master}' must be 1-128 letters, digits, '-', '_' or '.'"
                    ));
                }
                (
                    RedisTopology::Sentinel {
                        master: master.to_owned(),
                    },
                    db,
                )
            }
            _ => match segments.as_slice() {
                [] | [""] => (RedisTopology::Cluster, 0),
                _ => {
                    return Err(
                        "a cluster URL has no path (Redis Cluster has database 0 only)".into(),
                    )
                }
            },
        };
        Ok(Self {
            topology,
            tls,
            hosts,
            username,
            password,
            db,
        })
    }
}

fn parse_db(s: &str) -> Result<i64, String> {
    match s.parse::<u16>() {
        Ok(db) => Ok(i64::from(db)),
        Err(_) => Err(format!("database '{s}' is not a number from 0 to 65535")),
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host(h: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = h.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("host '{h}' lacks the closing ']'"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{addr}' is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("host '{h}': expected ':' and a port after ']'"))?,
            ),
        };
        (addr, port)
    } else {
        match h.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && (host.contains(':')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
    if !host_ok {
        return Err(format!("'{h}' is not a host name or address"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("host '{h}': '{p}' is not a port from 1 to 65535")),
        },
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(h, p)| (h.to_string(), *p)).collect()
    }

    #[test]
    fn single_server_forms() {
        let u = RedisUrl::parse("redis://127.0.0.1:6379/0").unwrap();
        assert_eq!(
            (u.topology, u.tls, u.hosts, u.db),
            (
                RedisTopology::Single,
                false,
                hosts(&[("127.0.0.1", 6379)]),
                0
            )
        );
        let u = RedisUrl::parse("rediss://relay:p%40ss%3Aword@redis.example:6380/3").unwrap();
        assert!(u.tls);
        assert_eq!(u.username.as_deref(), Some("relay"));
        assert_eq!(u.password.as_deref(), Some("p@ss:word"));
        assert_eq!((u.hosts, u.db), (hosts(&[("redis.example", 6380)]), 3));
        let u = RedisUrl::parse("redis://:secret@[::1]").unwrap();
        assert_eq!(
            (u.username, u.password.as_deref(), u.hosts),
            (None, Some("secret"), hosts(&[("::1", 6379)]))
        );
    }

    #[test]
    fn sentinel_and_cluster_forms() {
        let u = RedisUrl::parse("rediss+sentinel://relay:pw@s1:26379,s2,10.0.0.3:26380/queue-1/2")
            .unwrap();
        assert_eq!(
            u.topology,
            RedisTopology::Sentinel {
                master: "queue-1".into()
            }
        );
        assert_eq!(
            (u.tls, u.hosts, u.db),
            (
                true,
                hosts(&[("s1", 26379), ("s2", 26379), ("10.0.0.3", 26380)]),
                2
            )
        );
        let u = RedisUrl::parse("redis+cluster://n1:7000,n2:7001").unwrap();
        assert_eq!(
            (u.topology, u.hosts, u.db),
            (
                RedisTopology::Cluster,
                hosts(&[("n1", 7000), ("n2", 7001)]),
                0
            )
        );
    }

    #[test]
    fn refusals_name_the_problem_but_never_the_password() {
        for (url, needle) in [
            ("http://h", "scheme 'http'"),
            ("redis://a,b", "exactly one host"),
            ("redis://h/x", "database 'x'"),
            ("rediss://h#insecure", "redis_ca_file"),
            ("redis://h?db=1", "query"),
            ("redis+sentinel://s1,s2", "master"),
            ("redis+sentinel://s1/m/x/y", "master"),
            ("redis+cluster://n1/0", "no path"),
            ("redis://h:0", "port"),
            ("redis://h:99999", "port"),
            ("redis://relay@h", "needs a password"),
            ("redis://u:topsecret@h x", "not a host"),
            ("redis://u:topsecret@[::1", "']'"),
            ("redis://u:top/secret@h:x", "port"),
            ("redis://u:top?secret@h/x", "database 'x'"),
        ] {
            let e = RedisUrl::parse(url).unwrap_err();
            assert!(e.contains(needle), "{url}: {e}");
            assert!(!e.contains("secret"), "{url}: {e}");
        }
        let dbg = format!("{:?}", RedisUrl::parse("redis://u:topsecret@h").unwrap());
        assert!(!dbg.contains("topsecret"), "{dbg}");
    }
}
