//! License check without network or `cargo deny`: every package of the locked dependency graph
//! (`cargo metadata --offline --locked`, this platform, dev-dependencies included) has a `license`
//! expression satisfied by `licenses-allowed.txt`, or is listed there by name with a reason; and
//! `LICENSE` is the license the workspace's `Cargo.toml` declares.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(name)
}

/// The allowed SPDX ids, and the packages allowed by name (name -> reason).
struct Allowed {
    licenses: BTreeSet<String>,
    packages: BTreeMap<String, String>,
}

fn allowed() -> Allowed {
    let path = repo_file("licenses-allowed.txt");
    let text = std::fs::read_to_string(&path).expect("read licenses-allowed.txt");
    let mut allowed = Allowed {
        licenses: BTreeSet::new(),
        packages: BTreeMap::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("package ") {
            let (name, reason) = rest
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or((rest, ""));
            assert!(
                !reason.trim().is_empty(),
                "licenses-allowed.txt:{}: `package {name}` needs a reason after the name",
                n + 1
            );
            allowed
                .packages
                .insert(name.to_owned(), reason.trim().to_owned());
        } else {
            assert!(
                !line.contains(char::is_whitespace),
                "licenses-allowed.txt:{}: one SPDX id per line, got {line:?}",
                n + 1
            );
            allowed.licenses.insert(line.to_owned());
        }
    }
    allowed
}

/// Whether the SPDX expression `expr` is satisfied by `ids` (OR: one side; AND: both; `/` is OR;
/// `X WITH exception` needs X). Precedence: WITH, then AND, then OR; parentheses group.
fn satisfied(expr: &str, ids: &BTreeSet<String>) -> Result<bool, String> {
    let spaced = expr
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    let value = or_expr(&tokens, &mut pos, ids)?;
    match tokens.get(pos) {
        None => Ok(value),
        Some(t) => Err(format!("unexpected {t:?} in {expr:?}")),
    }
}

fn or_expr(t: &[&str], pos: &mut usize, ids: &BTreeSet<String>) -> Result<bool, String> {
    let mut value = and_expr(t, pos, ids)?;
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        value |= and_expr(t, pos, ids)?;
    }
    Ok(value)
}

fn and_expr(t: &[&str], pos: &mut usize, ids: &BTreeSet<String>) -> Result<bool, String> {
    let mut value = atom(t, pos, ids)?;
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        value &= atom(t, pos, ids)?;
    }
    Ok(value)
}

fn atom(t: &[&str], pos: &mut usize, ids: &BTreeSet<String>) -> Result<bool, String> {
    let token = t.get(*pos).ok_or("expression ends early")?;
    *pos += 1;
    if *token == "(" {
        let value = or_expr(t, pos, ids)?;
        if t.get(*pos) != Some(&")") {
            return Err("missing )".into());
        }
        *pos += 1;
        return Ok(value);
    }
    if ["AND", "OR", "WITH", ")"].contains(token) {
        return Err(format!("{token:?} where a license id belongs"));
    }
    if t.get(*pos) == Some(&"WITH") {
        // An exception only grants more; the license it modifies decides.
        t.get(*pos + 1).ok_or("WITH without an exception")?;
        *pos += 2;
    }
    Ok(ids.contains(*token))
}

fn metadata() -> serde_json::Value {
    msgrelay_testkit::cargo_metadata(&repo_file("Cargo.toml"))
}

#[test]
fn every_dependency_license_is_allowed() {
    let allowed = allowed();
    let meta = metadata();
    let mut refused = Vec::new();
    let mut names = BTreeSet::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name");
        let version = p["version"].as_str().expect("version");
        names.insert(name);
        if allowed.packages.contains_key(name) {
            continue;
        }
        match p["license"].as_str() {
            None => refused.push(format!(
                "{name} {version}: no `license` field (read its license, then list it as `package {name}  reason`)"
            )),
            Some(expr) => match satisfied(expr, &allowed.licenses) {
                Ok(true) => {}
                Ok(false) => refused.push(format!("{name} {version}: {expr}")),
                Err(e) => refused.push(format!("{name} {version}: unreadable license: {e}")),
            },
        }
    }
    assert!(
        refused.is_empty(),
        "licenses not allowed by licenses-allowed.txt:\n  {}\nreplace the dependency, or add the license (or the package, with a reason) there",
        refused.join("\n  ")
    );
    let stale: Vec<&String> = allowed
        .packages
        .keys()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "licenses-allowed.txt lists packages no longer in the graph: {stale:?}; remove them"
    );
}

#[test]
fn license_expressions() {
    let ids: BTreeSet<String> = ["MIT", "Apache-2.0", "Unicode-3.0"]
        .map(String::from)
        .into();
    for (expr, want) in [
        ("MIT", true),
        ("GPL-3.0-only", false),
        ("MIT OR Apache-2.0", true),
        ("GPL-3.0-only OR MIT", true),
        ("MIT AND GPL-3.0-only", false),
        ("MIT AND Apache-2.0", true),
        ("MIT/Apache-2.0", true),
        ("Apache-2.0 / GPL-3.0-only", true),
        ("(MIT OR Apache-2.0) AND Unicode-3.0", true),
        ("(MIT OR Apache-2.0) AND ISC", false),
        ("ISC OR MIT AND Apache-2.0", true),
        ("ISC AND MIT OR Apache-2.0", true),
        ("ISC AND (MIT OR Apache-2.0)", false),
        ("Apache-2.0 WITH LLVM-exception OR ISC", true),
        ("GPL-2.0-only WITH Classpath-exception-2.0", false),
    ] {
        assert_eq!(satisfied(expr, &ids), Ok(want), "{expr}");
    }
    for bad in [
        "",
        "MIT OR",
        "(MIT",
        "MIT)",
        "MIT Apache-2.0",
        "AND MIT",
        "MIT WITH",
    ] {
        assert!(satisfied(bad, &ids).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn license_file_matches_the_workspace_license() {
    let manifest = std::fs::read_to_string(repo_file("Cargo.toml")).expect("read Cargo.toml");
    let section = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("[workspace.package] in Cargo.toml");
    let declared = section
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "license").then(|| value.trim().trim_matches('"').to_owned())
        })
        .expect("license in [workspace.package]");
    // How each license's canonical text begins (extend when the workspace license changes).
    let opening = match declared.as_str() {
        "Apache-2.0" => ["Apache License", "Version 2.0, January 2004"],
        "MIT" => [
            "MIT License",
            "Permission is hereby granted, free of charge",
        ],
        other => panic!("teach this test how the text of {other} begins"),
    };
    let text = std::fs::read_to_string(repo_file("LICENSE")).expect("read LICENSE");
    let start: String = text
        .split_whitespace()
        .take(40)
        .collect::<Vec<_>>()
        .join(" ");
    for phrase in opening {
        assert!(
            start.contains(phrase),
            "LICENSE does not read as {declared} (Cargo.toml): no {phrase:?} at its start"
        );
    }
    let meta = metadata();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for p in meta["packages"].as_array().expect("packages") {
        if members.contains(p["id"].as_str().unwrap_or_default()) {
            assert_eq!(
                p["license"].as_str(),
                Some(declared.as_str()),
                "{}: use `license.workspace = true`",
                p["name"]
            );
        }
    }
}
