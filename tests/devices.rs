//! Devices end to end: `tinygpt devices`, training and sampling on wgpu (Mesa's software Vulkan
//! driver in CI), checkpoints that move between wgpu and the CPU, and clear device errors.

mod common;

use common::*;

/// Whether wgpu finds an adapter; in CI it must (`.ci/run` installs mesa-vulkan-drivers).
fn wgpu_available() -> bool {
    let out = tinygpt_ok(&["devices", "--json"]);
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(
        json["backends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b == "wgpu")
    );
    let found = !json["wgpu_adapters"].as_array().unwrap().is_empty();
    if !found && std::env::var_os("CI").is_some() {
        panic!("CI must have a wgpu adapter (.ci/run installs mesa-vulkan-drivers)");
    }
    if !found {
        eprintln!("no wgpu adapter here: wgpu end-to-end tests not run");
    }
    found
}

/// How far apart val losses may be after 20 steps on wgpu and on flex. wgpu is not bit-exact
/// from run to run (on lavapipe two identical runs differed by 1.0e-3 at step 10), and flex
/// differs from it by about as much, so the bound is a few times that.
const WGPU_REPRODUCIBILITY: f64 = 5e-3;

fn train(scratch: &Scratch, name: &str, device: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = scratch.str(name);
    let mut args = vec![
        "--device",
        device,
        "--set",
        "train.max_steps=20",
        "--set",
        "train.eval_interval=10",
    ];
    args.extend_from_slice(extra);
    train_tiny(&out, &args);
    metrics(&scratch.path(name))
}

fn resume(scratch: &Scratch, name: &str, device: &str) -> Vec<serde_json::Value> {
    tinygpt_ok(&["train", "--resume", &scratch.str(name), "--device", device]);
    metrics(&scratch.path(name))
}

fn val_losses(lines: &[serde_json::Value]) -> Vec<f64> {
    lines
        .iter()
        .filter_map(|l| l["val_loss"].as_f64())
        .collect()
}

fn greedy(scratch: &Scratch, name: &str, device: &str) -> String {
    let out = tinygpt_ok(&[
        "sample",
        "--run",
        &scratch.str(name),
        "--device",
        device,
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "40",
        "--temperature",
        "0",
    ]);
    stdout(&out)
}

#[test]
fn trains_and_samples_on_wgpu_like_on_the_cpu() {
    if !wgpu_available() {
        return;
    }
    let scratch = Scratch::new("devices-train");
    let on_gpu = train(&scratch, "gpu", "wgpu", &[]);
    let on_cpu = train(&scratch, "cpu", "flex", &[]);
    let (gpu, cpu) = (val_losses(&on_gpu), val_losses(&on_cpu));
    assert_eq!(gpu.len(), 3, "{on_gpu:?}");
    assert!(gpu[2] < gpu[0] - 0.5, "wgpu did not learn: {gpu:?}");
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!(
            (g - c).abs() < WGPU_REPRODUCIBILITY,
            "val loss wgpu {gpu:?} vs flex {cpu:?}"
        );
    }
    // The same trained weights give the same greedy text on either device.
    let text = greedy(&scratch, "gpu", "wgpu");
    assert!(text.starts_with("ROMEO:") && text.len() > "ROMEO:".len());
    assert_eq!(text, greedy(&scratch, "gpu", "flex"));
}

#[test]
fn checkpoints_move_between_wgpu_and_the_cpu() {
    if !wgpu_available() {
        return;
    }
    let scratch = Scratch::new("devices-resume");
    let straight = val_losses(&train(&scratch, "straight", "flex", &[]));
    let stop = ["--stop-at-step", "10"];
    // Trained on wgpu, finished on the CPU; and the other way round.
    train(&scratch, "gpu-then-cpu", "wgpu", &stop);
    let gpu_then_cpu = val_losses(&resume(&scratch, "gpu-then-cpu", "flex"));
    train(&scratch, "cpu-then-gpu", "flex", &stop);
    let cpu_then_gpu = val_losses(&resume(&scratch, "cpu-then-gpu", "wgpu"));
    for losses in [&gpu_then_cpu, &cpu_then_gpu] {
        assert_eq!(losses.len(), straight.len(), "{losses:?}");
        for (a, b) in losses.iter().zip(&straight) {
            assert!(
                (a - b).abs() < WGPU_REPRODUCIBILITY,
                "{losses:?} vs straight {straight:?}"
            );
        }
    }
}

#[test]
fn device_errors_are_one_clear_line() {
    let scratch = Scratch::new("devices-errors");
    let out = tinygpt(&[
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--device",
        "cuda",
        "--out",
        &scratch.str("run"),
    ]);
    // No CUDA backend: the error says how NVIDIA GPUs run instead.
    assert_clean_error(&out, "--device wgpu:discrete");
    assert!(!scratch.path("run").exists(), "nothing is written");

    // No machine here has a ninth discrete GPU.
    let out = tinygpt(&[
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--device",
        "wgpu:discrete:8",
        "--out",
        &scratch.str("run"),
    ]);
    assert_clean_error(&out, "--device flex");
    assert!(!scratch.path("run").exists(), "nothing is written");
}

#[test]
fn auto_says_which_device_it_chose() {
    let json: serde_json::Value =
        serde_json::from_str(stdout(&tinygpt_ok(&["devices", "--json"])).trim()).unwrap();
    let chosen = json["auto"].as_str().unwrap().split(' ').next().unwrap();
    if json["wgpu_adapters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["type"] == "Cpu")
    {
        assert_eq!(chosen, "flex", "a software adapter is never auto's choice");
    }
    let scratch = Scratch::new("devices-auto");
    let out = train_tiny(
        &scratch.str("run"),
        &["--device", "auto", "--set", "train.max_steps=2"],
    );
    let header = format!("device auto ({chosen})");
    assert!(stderr(&out).contains(&header), "{}", stderr(&out));
}

#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn devices_names_the_cpus_widest_vectors() {
    let json: serde_json::Value =
        serde_json::from_str(stdout(&tinygpt_ok(&["devices", "--json"])).trim()).unwrap();
    let isa = isa_from_cpuinfo();
    assert_eq!(json["cpu_vector_isa"], isa);
    let lanes = if isa == "AVX-512F" {
        16
    } else if isa == "SSE2" {
        4
    } else {
        8
    };
    assert_eq!(json["cpu_f32_lanes"], lanes);
    let text = stdout(&tinygpt_ok(&["devices"]));
    assert!(
        text.contains(&format!("widest vectors: {isa} ({lanes} f32 lanes")),
        "{text}"
    );
}
