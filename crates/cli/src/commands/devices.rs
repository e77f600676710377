//! `tinygpt devices`: the backends compiled in and the wgpu adapters found, so a user can see
//! which device `auto` picks and why a GPU is or isn't used.

use anyhow::Result;
use burn::tensor::wgpu::wgpu;

use tinygpt_train::cpu::{LEVEL_VARIABLE, Level, has_amx_bf16, has_avx512_bf16, vector_isa};
use tinygpt_train::device::{BACKENDS, adapters, auto_device, device_name};

use crate::ranks::{Job, MPI_COMPILED};

#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print only the --device names that select a GPU here, one per line (for scripts).
    #[arg(long, conflicts_with = "json")]
    pub gpu_names: bool,
}

pub fn devices_command(args: DevicesArgs, job: &Job) -> Result<()> {
    let collective = job.collective();
    let isa = vector_isa();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let adapters = adapters();
    let auto = auto_choice(&adapters);
    let gpus = gpu_device_names(&adapters);
    if args.gpu_names {
        for name in &gpus {
            outln!("{name}")?;
        }
        return Ok(());
    }
    if args.json {
        let adapters: Vec<_> = adapters
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "type": format!("{:?}", a.device_type),
                    "backend": format!("{:?}", a.backend),
                    "driver": a.driver,
                    "driver_info": a.driver_info,
                    "device": device_name(a.device_type),
                })
            })
            .collect();
        let json = serde_json::json!({
            "backends": BACKENDS.iter().map(|b| b.name).collect::<Vec<_>>(),
            "cpu_threads": threads,
            "cpu_vector_isa": isa.name,
            "cpu_f32_lanes": isa.f32_lanes,
            "cpu_bf16": {
                "avx512_bf16": has_avx512_bf16(),
                "amx_bf16": has_amx_bf16(),
                "amx_bf16_granted": Level::Amx.available(),
            },
            "kernel_level": Level::chosen().name(),
            "kernel_level_best": Level::best().name(),
            "wgpu_adapters": adapters,
            "gpu_devices": gpus,
            "auto": auto,
            "mpi": {
                "compiled": MPI_COMPILED,
                "library": job.mpi_library(),
                "ranks": collective.ranks(),
                "rank": collective.rank(),
            },
        });
        outln!("{json}")?;
        return Ok(());
    }
    outln!("backends compiled in:")?;
    for backend in BACKENDS {
        outln!("  {:<9} {}", backend.name, backend.about)?;
    }
    outln!(
        "CPU threads: {threads} | widest vectors: {} ({} f32 lanes{})",
        isa.name,
        isa.f32_lanes,
        if isa.fma { ", fused multiply-add" } else { "" }
    )?;
    let yes_no = |has: bool| if has { "yes" } else { "no" };
    let tiles = match (has_amx_bf16(), Level::Amx.available()) {
        (true, true) => "yes (granted: the linear maps multiply on TDPBF16PS)",
        (true, false) => "yes, but Linux refused the tile state",
        _ => "no",
    };
    outln!(
        "bf16 products: AVX512_BF16 (VDPBF16PS) {} | AMX-BF16 tiles {tiles}",
        yes_no(has_avx512_bf16()),
    )?;
    let (chosen, best) = (Level::chosen(), Level::best());
    if chosen == best {
        outln!(
            "vector kernels: {} (the widest here; {LEVEL_VARIABLE}=baseline|avx2|avx512|avx512bf16|amx holds them to another)",
            chosen.name()
        )?;
    } else {
        outln!(
            "vector kernels: {}, held there by {LEVEL_VARIABLE} (the widest here is {})",
            chosen.name(),
            best.name()
        )?;
    }
    if adapters.is_empty() {
        outln!(
            "wgpu adapters: none found (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers, or your GPU vendor's)"
        )?;
    } else {
        outln!("wgpu adapters:")?;
        for a in &adapters {
            let driver = [a.driver.as_str(), a.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            outln!(
                "  {:<40} {:<14} {:<8} driver: {:<30} --device {}",
                a.name,
                format!("{:?}", a.device_type),
                format!("{:?}", a.backend),
                driver,
                device_name(a.device_type)
            )?;
        }
    }
    outln!(
        "GPU devices: {}",
        if gpus.is_empty() {
            "none".to_string()
        } else {
            gpus.join(", ")
        }
    )?;
    outln!("auto picks: {auto}")?;
    outln!("MPI: {}", mpi_line(job))?;
    Ok(())
}

/// Whether MPI is compiled in, and the ranks running.
fn mpi_line(job: &Job) -> String {
    let collective = job.collective();
    match (MPI_COMPILED, job.mpi_library()) {
        (false, _) => {
            "not compiled in (build with --features mpi to train on several processes)".to_string()
        }
        (true, None) => {
            "compiled in; 1 rank (not started by an MPI launcher: use mpirun -np N)".to_string()
        }
        (true, Some(library)) => format!(
            "compiled in; {} ranks running, this is rank {} ({library})",
            collective.ranks(),
            collective.rank()
        ),
    }
}

/// The `--device` names of the GPUs here: one per kind of hardware wgpu adapter (software
/// adapters such as lavapipe are left out).
fn gpu_device_names(adapters: &[wgpu::AdapterInfo]) -> Vec<&'static str> {
    let mut names = Vec::new();
    for a in adapters {
        let name = device_name(a.device_type);
        if a.device_type != wgpu::DeviceType::Cpu && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// What `--device auto` resolves to, in words.
fn auto_choice(adapters: &[wgpu::AdapterInfo]) -> String {
    let chosen = auto_device(adapters);
    match adapters
        .iter()
        .find(|a| device_name(a.device_type) == chosen)
    {
        Some(adapter) => format!("{chosen} ({})", adapter.name),
        None => format!(
            "{chosen} (no hardware GPU found; a software adapter would be slower than flex)"
        ),
    }
}
