//! Simulated hosts: one Linux network namespace per host, each with a veth pair whose other end
//! hangs on a bridge that lives in a namespace of its own (the "switch"). Nothing touches the
//! machine's own network: the bridge, the addresses (10.77.0.0/24) and every process stay inside
//! namespaces named `msgrelay-mh-<pid>-*`, removed on Drop together with whatever runs in them.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Namespaces of one test run; everything in them is killed and they are deleted on Drop.
pub struct Net {
    prefix: String,
    namespaces: Vec<String>,
    next_link: u32,
}

/// One simulated host: its namespace and its address on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    pub ns: String,
    pub ip: Ipv4Addr,
}

/// Runs `ip` with these arguments; the error text when it fails.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

const PREFIX: &str = "msgrelay-mh-";

impl Net {
    /// Creates the switch namespace with its bridge; `Err` says why namespaces are unavailable.
    pub fn new() -> Result<Net, String> {
        remove_stale();
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let mut net = Net {
            prefix,
            namespaces: Vec::new(),
            next_link: 0,
        };
        let sw = net.add_namespace("sw")?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        Ok(net)
    }

    fn add_namespace(&mut self, name: &str) -> Result<String, String> {
        let ns = format!("{}{name}", self.prefix);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        Ok(ns)
    }

    /// Adds a host named `name` at 10.77.0.`octet`, plugged into the bridge.
    pub fn add_host(&mut self, name: &str, octet: u8) -> Host {
        self.try_add_host(name, octet)
            .unwrap_or_else(|e| panic!("cannot create host {name}: {e}"))
    }

    fn try_add_host(&mut self, name: &str, octet: u8) -> Result<Host, String> {
        let ns = self.add_namespace(name)?;
        let sw = format!("{}sw", self.prefix);
        self.next_link += 1;
        let port = format!("p{}", self.next_link);
        ip(&[
            "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        let addr = Ipv4Addr::new(10, 77, 0, octet);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(Host {
            name: name.to_owned(),
            ns,
            ip: addr,
        })
    }
}

/// Process ids running in a namespace.
pub fn pids_in(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `kill -9` of every process in a namespace: the host loses power.
pub fn kill_all_in(ns: &str) -> usize {
    let pids = pids_in(ns);
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    pids.len()
}

fn delete_namespace(ns: &str) {
    for _ in 0..50 {
        kill_all_in(ns);
        if ip(&["netns", "del", ns]).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("warning: could not delete network namespace {ns}");
}

/// Namespaces left by a run that was itself killed (its pid is gone).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_namespace(ns);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Hosts first (their processes die with them), the switch last.
        for ns in self.namespaces.iter().rev() {
            delete_namespace(ns);
        }
    }
}
