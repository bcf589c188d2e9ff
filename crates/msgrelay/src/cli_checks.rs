//! Checks that keep the command line and the documents honest (run by `cargo test`):
//! every option of every subcommand has a help line, and every `msgrelay …` command and every
//! `section.key` configuration key that README.md or docs/*.md name exists.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::CommandFactory;

use crate::Cli;

fn walk_help(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            missing.push(format!("{path}: {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        let name = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            missing.push(format!("{name}: the subcommand itself"));
        }
        walk_help(sub, &name, missing);
    }
}

#[test]
fn every_option_of_every_subcommand_has_a_help_line() {
    let mut missing = Vec::new();
    walk_help(&Cli::command(), "msgrelay", &mut missing);
    assert!(
        missing.is_empty(),
        "options without a help line (add a /// doc comment): {missing:#?}"
    );
}

/// README.md and every docs/*.md, as (file name, text).
fn documents() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut paths = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read document");
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// The text of every `code span` and ```fenced block``` of a Markdown document; blocks marked
/// ```text``` show output, not commands, and are left out.
fn code_spans(text: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    for (i, part) in text.split("```").enumerate() {
        if i % 2 == 1 {
            if !part.starts_with("text") {
                spans.push(part);
            }
        } else {
            spans.extend(part.split('`').skip(1).step_by(2));
        }
    }
    spans
}

fn is_word(token: &str) -> bool {
    !token.is_empty()
        && token.starts_with(|c: char| c.is_ascii_lowercase())
        && token
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The subcommand path a `msgrelay a b c …` invocation names, if clap does not know it.
fn unknown_command(cli: &clap::Command, words: &[&str]) -> Option<String> {
    let mut cmd = cli;
    let mut path = String::from("msgrelay");
    for word in words {
        // No subcommands: the rest are arguments.
        cmd.get_subcommands().next()?;
        match cmd.find_subcommand(word) {
            Some(sub) => {
                path = format!("{path} {word}");
                cmd = sub;
            }
            None => return Some(format!("{path} {word}")),
        }
    }
    None
}

#[test]
fn every_command_the_documents_name_exists() {
    let cli = Cli::command();
    let mut unknown = BTreeSet::new();
    for (file, text) in documents() {
        for span in code_spans(&text) {
            for line in span.lines() {
                let mut rest = line;
                while let Some(at) = rest.find("msgrelay ") {
                    let before = rest[..at].chars().last();
                    rest = &rest[at + "msgrelay ".len()..];
                    // `msgrelay.exe`, paths like `/usr/bin/msgrelay` and `msgrelay-send` count too;
                    // `data/msgrelay ` (a directory) or `.\msgrelay ` (Windows) as well.
                    let user_name = rest_before(line, rest).trim_end().ends_with(" -u");
                    if user_name
                        || before.is_some_and(|c| {
                            c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '='
                        })
                    {
                        continue;
                    }
                    let words: Vec<&str> =
                        rest.split_whitespace().take_while(|t| is_word(t)).collect();
                    if let Some(bad) = unknown_command(&cli, &words) {
                        unknown.insert(format!("{file}: `{bad}`"));
                    }
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "documents name commands that do not exist: {unknown:#?}"
    );
}

/// The part of `line` before the `msgrelay ` that `rest` follows.
fn rest_before<'a>(line: &'a str, rest: &str) -> &'a str {
    let end = line.len() - rest.len() - "msgrelay ".len();
    &line[..end]
}

/// `section.key` for every key of the configuration (from the defaults).
fn config_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    let defaults = serde_json::to_value(msgrelay_core::Config::default()).expect("serialize");
    let mut sections = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (section, value) in defaults.as_object().expect("a table") {
        if let Some(table) = value.as_object() {
            sections.insert(section.clone());
            for key in table.keys() {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    (sections, keys)
}

#[test]
fn every_configuration_key_the_documents_name_exists() {
    let (sections, keys) = config_keys();
    let mut unknown = BTreeSet::new();
    for (file, text) in documents() {
        for span in code_spans(&text) {
            // A key is named as `section.key` (alone, or as `section.key = value`).
            let candidate = span.split([' ', '=', '\n']).next().unwrap_or("").trim();
            let Some((section, key)) = candidate.split_once('.') else {
                continue;
            };
            // File names such as `queue.db`, `worker.crt` or `http.rs` are not keys.
            const FILE_TYPES: &[&str] = &[
                "db", "crt", "key", "pem", "p12", "csr", "rs", "toml", "md", "txt", "json", "log",
                "service", "ps1", "bat", "exe", "sh", "py", "lua",
            ];
            if !sections.contains(section)
                || FILE_TYPES.contains(&key)
                || key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            if !keys.contains(candidate) {
                unknown.insert(format!("{file}: `{candidate}`"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "documents name configuration keys that do not exist: {unknown:#?}"
    );
}

#[test]
fn the_version_names_the_release_and_the_commit_it_was_built_from() {
    let version = Cli::command().render_version();
    let prefix = format!("msgrelay {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&prefix), "{version}");
    let commit = version[prefix.len()..].trim_end().trim_end_matches(')');
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        // Built from a git checkout: the commit is the checkout's HEAD.
        Some(head) if std::env::var_os("MSGRELAY_COMMIT").is_none() => {
            assert!(
                commit.len() >= 7 && head.starts_with(commit),
                "{version} (HEAD is {head})"
            )
        }
        _ => assert!(!commit.is_empty(), "{version}"),
    }
}
