//! The house plan holds: libraries depend one way only (`cli → train → {model, data}`,
//! `model → kernels`, `train → kernels`, `cli → viz`), and nothing below the binary knows the
//! terminal (clap, indicatif, signal handling). `.ci/run` checks the transitive graph with
//! `cargo tree` too.

mod common;

use common::workspace_root;

/// The `[dependencies]` names of crate `name` (dev-dependencies may differ).
fn dependencies(name: &str) -> Vec<String> {
    let path = workspace_root()
        .join("crates")
        .join(name)
        .join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn libraries_depend_one_way_and_know_no_terminal() {
    let allowed: [(&str, &[&str]); 6] = [
        ("kernels", &[]),
        ("model", &["tinygpt-kernels"]),
        ("data", &[]),
        ("viz", &[]),
        (
            "train",
            &["tinygpt-kernels", "tinygpt-model", "tinygpt-data"],
        ),
        (
            "cli",
            &[
                "tinygpt-model",
                "tinygpt-data",
                "tinygpt-train",
                "tinygpt-viz",
            ],
        ),
    ];
    for (name, internal) in allowed {
        let deps = dependencies(name);
        let ours: Vec<&str> = deps
            .iter()
            .map(String::as_str)
            .filter(|d| d.starts_with("tinygpt"))
            .collect();
        for dep in &ours {
            assert!(internal.contains(dep), "{name} must not depend on {dep}");
        }
        if name != "cli" {
            for terminal in ["clap", "indicatif", "ctrlc", "signal-hook"] {
                assert!(
                    !deps.iter().any(|d| d == terminal),
                    "{name} depends on {terminal}: terminal code belongs in crates/cli"
                );
            }
        }
    }
    // Every crate under crates/ is one of the above: a new one joins this plan explicitly.
    let mut found: Vec<String> = std::fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, ["cli", "data", "kernels", "model", "train", "viz"]);
}

#[test]
fn no_command_imports_another() {
    let dir = workspace_root().join("crates/cli/src/commands");
    let commands: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_stem().is_some_and(|s| s != "mod"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(commands.len() >= 11, "{commands:?}");
    for command in &commands {
        let text = std::fs::read_to_string(dir.join(format!("{command}.rs"))).unwrap();
        for other in &commands {
            for import in [format!("super::{other}"), format!("commands::{other}")] {
                assert!(
                    !text.contains(&import),
                    "commands/{command}.rs imports {import}: move what they share to commands/mod.rs or a library"
                );
            }
        }
    }
}

/// The end-to-end suite lives in the top-level `tests/` and every file of it runs: cargo only
/// finds tests beside a manifest, so each one is named in `crates/cli/Cargo.toml`.
#[test]
fn every_end_to_end_test_in_tests_is_run_by_cargo() {
    let manifest: toml::Table =
        std::fs::read_to_string(workspace_root().join("crates/cli/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let listed: std::collections::BTreeSet<String> = manifest["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap().to_string())
        .collect();
    let files: std::collections::BTreeSet<String> =
        std::fs::read_dir(workspace_root().join("tests"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".rs"))
            .map(|name| format!("../../tests/{name}"))
            .collect();
    assert!(files.len() >= 20, "{files:?}");
    assert_eq!(
        listed, files,
        "list each tests/*.rs as a [[test]] in crates/cli/Cargo.toml"
    );
    assert!(
        !workspace_root().join("crates/cli/tests").exists(),
        "end-to-end tests go in the top-level tests/"
    );
}
