//! `scripts/gpu-check.sh`: the binary it packs unpacks and runs on its own (as it must on a GPU
//! machine with no Rust toolchain), and its `run` step writes a JSON summary (here on the CPU,
//! with `--quick`).

mod common;

use std::process::Command;

use common::*;

fn script(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/gpu-check.sh"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gpu-check.sh {args:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

#[test]
fn the_packed_binary_unpacks_and_runs() {
    let scratch = Scratch::new("gpu-check-pack");
    let packed = scratch.path("dist");
    let binary = env!("CARGO_BIN_EXE_tinygpt");
    script(
        &[
            "pack",
            "--binary",
            binary,
            "--out",
            packed.to_str().unwrap(),
        ],
        &[],
    );
    let gz = packed.join("tinygpt.gz");
    let size = std::fs::metadata(&gz).unwrap().len();
    assert!(size < 64 << 20, "{size} bytes");
    assert!(size < std::fs::metadata(binary).unwrap().len() / 2);

    // Unpacked somewhere else, it runs with nothing from the build around it.
    let unpacked = scratch.path("elsewhere");
    script(
        &[
            "unpack",
            "--from",
            gz.to_str().unwrap(),
            "--to",
            unpacked.to_str().unwrap(),
        ],
        &[],
    );
    let devices = Command::new(unpacked.join("tinygpt"))
        .arg("devices")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(scratch.path(""))
        .output()
        .unwrap();
    assert!(devices.status.success(), "{}", stderr(&devices));
    let text = stdout(&devices);
    assert!(
        text.contains("flex") && text.contains("auto picks:"),
        "{text}"
    );
}

#[test]
fn run_writes_a_summary() {
    let scratch = Scratch::new("gpu-check-run");
    let out = scratch.str("summary.json");
    script(
        &[
            "run",
            "--devices",
            "flex",
            "--steps",
            "2",
            "--quick",
            "--out",
            &out,
        ],
        &[("TINYGPT", env!("CARGO_BIN_EXE_tinygpt"))],
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(summary["devices"]["backends"].as_array().unwrap().len() >= 3);
    let benches = summary["bench"].as_array().unwrap();
    assert_eq!(benches.len(), 2, "{summary}");
    for bench in benches {
        assert!(bench["result"].is_object(), "{bench}");
    }
    let train = &summary["train"][0];
    assert_eq!(train["steps"], 2, "{summary}");
    assert_eq!(train["last_eval"]["step"], 2, "{summary}");
    assert!(train["last_eval"]["val_loss"].as_f64().unwrap() > 0.0);
}
