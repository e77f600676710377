//! Each vectorised kernel compiled for AVX-512, for AVX2+FMA and for the baseline target gives
//! the same numbers, on lengths that are not multiples of any vector width.

use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fresh::rewritable;
use crate::math::{self, Level, with_level};

/// Every kernel's outputs, concatenated, for inputs of `n` elements.
fn all_outputs(n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    let mut values =
        |scale: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-scale..scale)).collect() };
    let (x, dy, gamma, beta) = (values(6.0), values(1.0), values(2.0), values(0.5));
    let mut out = Vec::new();
    let (mut y, mut d) = (vec![0.0; n], vec![0.0; n]);
    math::gelu_forward(&x, rewritable(&mut y), rewritable(&mut d));
    out.extend(y.iter().chain(&d));
    math::gelu_tanh_forward(&x, rewritable(&mut y), rewritable(&mut d));
    out.extend(y.iter().chain(&d));
    let mut row = x.clone();
    out.push(math::exp_shifted(&mut row));
    out.extend(&row);
    out.push(math::dot(&x, &dy));
    let stats = math::layer_norm_row(&x, &gamma, &beta, 1e-5, rewritable(&mut y));
    out.extend([stats.0, stats.1]);
    out.extend(&y);
    let (mut dx, mut d_gamma, mut d_beta) = (vec![0.0; n], vec![0.1; n], vec![0.2; n]);
    let dx_out = rewritable(&mut dx);
    math::layer_norm_row_backward(&x, &dy, &gamma, stats, dx_out, &mut d_gamma, &mut d_beta);
    out.extend(dx.iter().chain(&d_gamma).chain(&d_beta));
    math::apply_dropout_mask(
        &x,
        rewritable(&mut y),
        0x5eed_cafe_f00d,
        977,
        3 << 30,
        4.0 / 3.0,
    );
    out.extend(&y);
    out
}

const LENGTHS: [usize; 12] = [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 385];

#[test]
fn every_vector_level_gives_the_baseline_numbers() {
    let baseline: Vec<Vec<f32>> = LENGTHS
        .iter()
        .map(|&n| with_level(Level::Baseline, || all_outputs(n)))
        .collect();
    for level in [Level::Avx2, Level::Avx512, Level::Avx512Bf16] {
        if !level.available() {
            // Straight to stderr, past the test harness's capture: a skipped path is loud.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: this CPU cannot run the {level:?} kernels; only a CPU with them tests them"
            );
            continue;
        }
        for (n, want) in LENGTHS.iter().zip(&baseline) {
            let got = with_level(level, || all_outputs(*n));
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * g.abs().max(w.abs()),
                    "{level:?}, n = {n}, output {i}: {g} against {w}"
                );
            }
            // AVX2 must in fact agree to the bit (no fused multiply-adds, same sums).
            if level == Level::Avx2 {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(want), "{level:?}, n = {n}");
            }
        }
    }
}

#[test]
fn kernels_run_at_the_best_level_unless_held_to_another() {
    let best = Level::best();
    assert!(best.available());
    assert!(Level::Baseline.available());
    // The widest level the CPU has, as cpu::vector_isa names it.
    let isa = crate::cpu::vector_isa().name;
    match best {
        Level::Avx512 | Level::Avx512Bf16 | Level::Amx => assert_eq!(isa, "AVX-512F"),
        Level::Avx2 => assert!(isa == "AVX2+FMA" || isa == "AVX-512F", "{isa}"),
        Level::Baseline => assert!(!isa.starts_with("AVX2") && !isa.starts_with("AVX-512")),
    }
    let inner = with_level(Level::Baseline, || {
        with_level(best, || assert_eq!(math::level(), best));
        math::level()
    });
    assert_eq!(
        inner,
        Level::Baseline,
        "the level is restored after a nested hold"
    );
    // Outside a hold the kernels run at the chosen level: the best unless TINYGPT_VECTOR_LEVEL
    // names another.
    assert_eq!(math::level(), Level::chosen());
    if Level::from_environment() == Ok(None) {
        assert_eq!(Level::chosen(), best);
    }
}

#[test]
fn a_vector_level_setting_names_a_level_this_cpu_runs() {
    for level in Level::ALL {
        match Level::from_setting(level.name()) {
            Ok(read) => {
                assert_eq!(read, level);
                assert!(level.available());
            }
            Err(message) => {
                assert!(!level.available(), "{message}");
                assert!(message.contains("cannot run"), "{message}");
                assert!(message.contains(Level::best().name()), "{message}");
            }
        }
    }
    // Names are exact: no other spelling, no vector ISA name, no width.
    for wrong in ["AVX2", "avx-512", "sse2", "512", "best"] {
        let message = Level::from_setting(wrong).unwrap_err();
        assert!(
            message.contains("baseline, avx2, avx512, avx512bf16 or amx"),
            "{wrong}: {message}"
        );
    }
}
