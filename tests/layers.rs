//! The architecture, checked: crate dependencies point only downward (from `cargo metadata`),
//! and the broker's top-level modules import each other without cycles (from their source).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every workspace crate and the Shoal crates it may use as a normal dependency. A crate not
/// listed here fails the test, so a new crate must take its place in the layers on purpose.
const ALLOWED: &[(&str, &[&str])] = &[
    ("shoal-sync", &[]),
    ("shoal-protocol", &[]),
    ("shoal-metrics", &[]),
    ("shoal-storage", &["shoal-sync", "shoal-metrics"]),
    ("shoal-metadata", &[]),
    ("shoal-raft", &[]),
    ("shoal-replication", &[]),
    ("shoal-cluster", &["shoal-metadata", "shoal-raft"]),
    (
        "shoal-broker",
        &[
            "shoal-sync",
            "shoal-metrics",
            "shoal-protocol",
            "shoal-storage",
            "shoal-metadata",
            "shoal-raft",
            "shoal-replication",
            "shoal-cluster",
        ],
    ),
    ("shoal-client", &["shoal-protocol"]),
    (
        "shoal",
        &[
            "shoal-protocol",
            "shoal-storage",
            "shoal-broker",
            "shoal-client",
        ],
    ),
    (
        "shoal-testkit",
        &["shoal-protocol", "shoal-storage", "shoal-client"],
    ),
    ("shoal-powerfs", &[]),
    ("shoal-bench", &[]),
    ("shoal-tuning", &["shoal-bench"]),
];

/// Crates that must never be reached from these, directly or through another crate.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("shoal-storage", &["shoal-protocol", "shoal-broker"]),
    (
        "shoal-metadata",
        &["shoal-protocol", "shoal-storage", "shoal-broker"],
    ),
    (
        "shoal-raft",
        &[
            "shoal-protocol",
            "shoal-storage",
            "shoal-metadata",
            "shoal-broker",
        ],
    ),
    (
        "shoal-cluster",
        &["shoal-protocol", "shoal-storage", "shoal-broker"],
    ),
    ("shoal-protocol", &["shoal-storage", "shoal-broker"]),
    ("shoal-client", &["shoal-storage", "shoal-broker"]),
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Normal (non-dev, non-build) dependencies on workspace crates, per workspace crate.
fn workspace_deps() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut deps = BTreeMap::new();
    for p in packages {
        let normal: BTreeSet<String> = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_string())
            .filter(|n| names.contains(n))
            .collect();
        deps.insert(p["name"].as_str().unwrap().to_string(), normal);
    }
    deps
}

fn reachable(deps: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(c) = stack.pop() {
        for d in deps.get(&c).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn crate_dependencies_point_only_downward() {
    let deps = workspace_deps();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(c, a)| (*c, a.iter().copied().collect()))
        .collect();
    for (krate, uses) in &deps {
        let Some(ok) = allowed.get(krate.as_str()) else {
            panic!("workspace crate {krate} has no place in tests/layers.rs ALLOWED: give it one");
        };
        for d in uses {
            assert!(
                ok.contains(d.as_str()),
                "{krate} depends on {d}, which is not below it (allowed: {ok:?})"
            );
        }
    }
    for (krate, never) in FORBIDDEN {
        let reach = reachable(&deps, krate);
        for n in *never {
            assert!(!reach.contains(*n), "{krate} reaches {n}");
        }
    }
    for (krate, uses) in &deps {
        assert!(
            krate == "shoal-testkit" || !uses.contains("shoal-testkit"),
            "{krate} depends on the test harness outside dev-dependencies"
        );
    }
}

/// Source text without `//` comments (doc comments mention paths freely).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Edges between the top-level modules of a crate: `a` → `b` when code in `a` names `crate::b`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = code_of(&src.join("lib.rs"));
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or(l.trim().strip_prefix("mod "))
        })
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if !modules.contains(&module) {
            continue; // lib.rs itself
        }
        let code = code_of(&file);
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != module {
                graph.entry(module.clone()).or_default().insert(name);
            }
        }
        graph.entry(module).or_default();
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn broker_modules_import_without_cycles() {
    let graph = module_graph(&repo_root().join("crates/broker/src"));
    assert!(graph.len() >= 8, "found too few broker modules: {graph:?}");
    assert!(
        graph["node"].contains("shard"),
        "the graph reader misses edges: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "broker module cycle: {}\nfull graph: {graph:#?}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.get_mut("c").unwrap().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
