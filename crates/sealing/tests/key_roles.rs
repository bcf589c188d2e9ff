//! Keys by role, as a fact of the dependency graph rather than a convention: the proxy's and the
//! worker's builds cannot name the at-rest keys (`msgrelay-at-rest`), the worker's and the
//! portal's cannot name the sealing keys (`msgrelay-sealing`), and no network role links the
//! operator crate (`msgrelay-admin`, which loads every key). Checked with `cargo metadata` over normal and
//! build dependencies (dev-dependencies never reach a shipped binary).

use std::collections::{BTreeSet, HashMap};

/// Package name -> names of its normal and build dependencies, for the workspace's resolved graph.
fn dependency_graph() -> HashMap<String, Vec<String>> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let meta = msgrelay_testkit::cargo_metadata(std::path::Path::new(manifest));
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].as_str() != Some("dev"))
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].to_owned())
            .collect();
        graph.insert(names[node["id"].as_str().unwrap()].to_owned(), deps);
    }
    graph
}

fn closure(graph: &HashMap<String, Vec<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            todo.extend(graph.get(&name).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn each_role_links_only_the_keys_it_holds() {
    let graph = dependency_graph();
    let proxy = closure(&graph, "msgrelay-proxy");
    let worker = closure(&graph, "msgrelay-worker");
    let server = closure(&graph, "msgrelay-server");
    let portal = closure(&graph, "msgrelay-portal");
    // Sanity: the graph was read (a renamed crate must not make this test pass vacuously).
    assert!(
        proxy.contains("msgrelay-sealing"),
        "the proxy seals, so it must link msgrelay-sealing"
    );
    assert!(server.contains("msgrelay-at-rest") && server.contains("msgrelay-sealing"));
    assert!(
        portal.contains("msgrelay-at-rest") && portal.contains("msgrelay-certs"),
        "the portal shows decrypted messages and issues certificates"
    );

    assert!(
        !proxy.contains("msgrelay-at-rest"),
        "the proxy must not be able to name AtRestKeys"
    );
    assert!(
        !worker.contains("msgrelay-at-rest"),
        "the worker must not be able to name AtRestKeys"
    );
    assert!(
        !worker.contains("msgrelay-sealing"),
        "the worker must not be able to name any sealing key"
    );
    assert!(
        !portal.contains("msgrelay-sealing"),
        "the portal opens nothing a proxy sealed: it must not be able to name a sealing key"
    );
    // The admin crate loads every key; a network role that links it would bypass the split.
    for (role, deps) in [
        ("proxy", &proxy),
        ("worker", &worker),
        ("server", &server),
        ("portal", &portal),
    ] {
        assert!(
            !deps.contains("msgrelay-admin"),
            "the {role} must not link the operator crate"
        );
    }
}
