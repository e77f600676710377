//! The fused ops in bf16: the linear map's output and both gradients equal the scalar bf16
//! reference to the bit, attention (stored-pattern and tiled) stays close to f32, causal and
//! inside its window, and each backward pass multiplies as its forward pass did.

use burn::tensor::{Tensor, TensorData};

use super::{random, training_device};
use crate::bf16::matmul::{reference, reference_from};
use crate::{Precision, bf16_products, linear, with_precision};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `rows × cols` row-major values transposed.
fn transposed(v: &[f32], [rows, cols]: [usize; 2]) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn the_bf16_linear_map_and_its_gradients_equal_the_reference_to_the_bit() {
    if let Err(why) = bf16_products() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    // The scalar reference's bits are `VDPBF16PS`'s (AMX tiles sum otherwise).
    crate::tests::on_dot_pairs(|| {
        let device = training_device();
        // A small product, the default shape's, and the tied unembedding (W a transposed view).
        for ([batch, time, d_in, d_out], bias, tied) in [
            ([3, 50, 20, 36], true, false),
            ([32, 64, 128, 128], true, false),
            ([4, 16, 33, 65], false, true),
        ] {
            let rows = batch * time;
            let x = Tensor::<3>::from_data(random([batch, time, d_in], 21), &device).require_grad();
            let leaf = if tied {
                [1, d_out, d_in]
            } else {
                [1, d_in, d_out]
            };
            let w_leaf = Tensor::<3>::from_data(random(leaf, 22), &device)
                .reshape([leaf[1], leaf[2]])
                .require_grad();
            let w = if tied {
                w_leaf.clone().transpose()
            } else {
                w_leaf.clone()
            };
            let b = bias.then(|| {
                Tensor::<3>::from_data(random([1, 1, d_out], 23), &device)
                    .reshape([d_out])
                    .require_grad()
            });
            // Only the forward pass runs under bf16: the backward pass must follow it on its own.
            let y = with_precision(Precision::Bf16, || {
                linear::linear(&x, &w, b.as_ref()).expect("flex autodiff takes the fused path")
            });
            let upstream = Tensor::<3>::from_data(random([batch, time, d_out], 24), &device);
            let grads = (y.clone() * upstream.clone()).sum().backward();

            let (x_v, w_v, up) = (values(x.clone()), values(w.clone()), values(upstream));
            let b_v = b.as_ref().map(|b| values(b.clone()));
            let want_y = reference_from(&x_v, &w_v, [rows, d_in, d_out], b_v.as_deref());
            assert!(
                same_bits(&values(y), &want_y),
                "y for {rows}×{d_in}×{d_out}"
            );
            let want_dx = reference(&up, &transposed(&w_v, [d_in, d_out]), [rows, d_out, d_in]);
            assert!(
                same_bits(&values(x.grad(&grads).unwrap()), &want_dx),
                "dx for {rows}×{d_in}×{d_out}"
            );
            let dw = reference(&transposed(&x_v, [rows, d_in]), &up, [d_in, rows, d_out]);
            let want_dw = if tied {
                transposed(&dw, [d_in, d_out])
            } else {
                dw
            };
            assert!(
                same_bits(&values(w_leaf.grad(&grads).unwrap()), &want_dw),
                "dW for {rows}×{d_in}×{d_out}"
            );
        }
    });
}

#[test]
fn bf16_is_this_threads_setting_only_inside_with_precision() {
    if let Err(why) = bf16_products() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let device = training_device();
    let x = Tensor::<3>::from_data(random([2, 8, 24], 31), &device);
    let w = Tensor::<3>::from_data(random([1, 24, 16], 32), &device).reshape([24, 16]);
    let run = || values(linear::linear(&x, &w, None).unwrap());
    let fp32 = run();
    let bf16 = with_precision(Precision::Bf16, run);
    assert_eq!(
        crate::precision(),
        Precision::Fp32,
        "restored after the call"
    );
    assert!(!same_bits(&fp32, &bf16), "bf16 multiplies differently");
    // Close: each term off by about 2^-8 of its size.
    let worst = fp32
        .iter()
        .zip(&bf16)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 0.25, "{worst}");
    assert!(same_bits(&run(), &fp32));
}

/// Which fused attention: the stored-pattern one, or the tiled one with this window.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    Stored,
    Tiled(usize),
}

/// The fused attention's heads and the gradient of the packed projections, the products in
/// `precision` (only the forward pass is told: the backward pass follows it).
fn attention_in(precision: Precision, qkv: &TensorData, n_head: usize) -> (Vec<f32>, Vec<f32>) {
    kernel_in(Kernel::Stored, precision, qkv, n_head)
}

fn kernel_in(
    kernel: Kernel,
    precision: Precision,
    qkv: &TensorData,
    n_head: usize,
) -> (Vec<f32>, Vec<f32>) {
    let device = training_device();
    let qkv = Tensor::<3>::from_data(qkv.clone(), &device).require_grad();
    let [batch, time, width] = qkv.dims();
    let output = with_precision(precision, || match kernel {
        Kernel::Stored => crate::attention::causal_attention(&qkv, n_head),
        Kernel::Tiled(window) => crate::tiled_attention::tiled_attention(&qkv, n_head, window),
    })
    .expect("flex autodiff takes the fused path");
    let d = width / 3 / n_head;
    let weights = Tensor::<3>::from_data(random([batch * n_head, time, d], 5), &device)
        .reshape([batch, n_head, time, d]);
    let grads = (output.clone() * weights).sum().backward();
    (values(output), values(qkv.grad(&grads).unwrap()))
}

#[test]
fn bf16_attention_is_close_to_f32_and_never_sees_the_future() {
    if let Err(why) = bf16_products() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    // An odd length (odd sums over keys), two full query tiles and a partial one, one head.
    for (n_head, time) in [(3, 17), (2, 150), (1, 64)] {
        let qkv = random([2, time, 72], 6);
        let (out32, grad32) = attention_in(Precision::Fp32, &qkv, n_head);
        let (out16, grad16) = attention_in(Precision::Bf16, &qkv, n_head);
        for (name, a, b) in [("output", &out32, &out16), ("dqkv", &grad32, &grad16)] {
            assert_near_not_equal(a, b, 0.02, &format!("{name}, {n_head} heads × {time}"));
        }
        // Another last position changes no earlier output, to the bit.
        let mut changed = qkv.clone().try_to_vec::<f32>().unwrap();
        for sequence in 0..2 {
            let last = (sequence * time + time - 1) * 72;
            changed[last..last + 72]
                .iter_mut()
                .for_each(|x| *x = -*x * 3.0);
        }
        let changed = TensorData::new(changed, [2, time, 72]);
        let (out_changed, _) = attention_in(Precision::Bf16, &changed, n_head);
        let d = 72 / 3 / n_head;
        for (i, (x, y)) in out16.iter().zip(&out_changed).enumerate() {
            let position = i / d % time;
            if position + 1 < time {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "{n_head} heads × {time}: output {i}"
                );
            }
        }
    }
}

/// max |a − b| within `share` of max |a|, and not the same bits.
fn assert_near_not_equal(a: &[f32], b: &[f32], share: f32, what: &str) {
    let size = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let worst = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(worst <= share * size, "{what}: {worst} of {size}");
    assert!(!same_bits(a, b), "{what}: bf16 must multiply differently");
}

#[test]
fn bf16_tiled_attention_is_close_to_f32_and_sees_only_its_window() {
    if let Err(why) = bf16_products() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    // (heads, head size, time, window): blocks of queries and keys with partial last ones, an
    // odd length, windows that start off the blocks of 16 the packed keys come in, one
    // position.
    for (n_head, d, time, window) in [
        (2, 32, 600, 0),
        (1, 64, 523, 0),
        (3, 16, 301, 7),
        (2, 32, 300, 100),
        (1, 128, 270, 269),
        (2, 16, 1, 0),
    ] {
        let width = 3 * n_head * d;
        let qkv = random([2, time, width], 7);
        let kernel = Kernel::Tiled(window);
        let (out32, grad32) = kernel_in(kernel, Precision::Fp32, &qkv, n_head);
        let (out16, grad16) = kernel_in(kernel, Precision::Bf16, &qkv, n_head);
        let case = format!("{n_head} heads of {d} × {time}, window {window}");
        if time > 1 {
            assert_near_not_equal(&out32, &out16, 0.02, &format!("output, {case}"));
            assert_near_not_equal(&grad32, &grad16, 0.02, &format!("dqkv, {case}"));
        }
        // A change at position j moves no output before j, nor (in a window) from j + W on.
        let j = time / 2;
        let mut changed = qkv.clone().try_to_vec::<f32>().unwrap();
        for sequence in 0..2 {
            let at = (sequence * time + j) * width;
            changed[at..at + width]
                .iter_mut()
                .for_each(|x| *x = -*x * 3.0);
        }
        let changed = TensorData::new(changed, [2, time, width]);
        let (out_changed, _) = kernel_in(kernel, Precision::Bf16, &changed, n_head);
        let mut moved = 0;
        for (i, (x, y)) in out16.iter().zip(&out_changed).enumerate() {
            let position = i / d % time;
            let sees_j = position >= j && (window == 0 || position < j + window);
            if !sees_j {
                assert_eq!(x.to_bits(), y.to_bits(), "{case}: output {i} at {position}");
            } else if x.to_bits() != y.to_bits() {
                moved += 1;
            }
        }
        assert!(moved > 0, "{case}: the change reached no output");
    }
}

#[test]
fn a_batch_of_bf16_products_equals_the_reference_entry_by_entry_in_place() {
    if let Err(why) = bf16_products() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    // The scalar reference's bits are `VDPBF16PS`'s (AMX tiles sum otherwise).
    crate::tests::on_dot_pairs(|| {
        let device = burn::tensor::Device::flex();
        let (n, m, k) = (3, 7, 45);
        let a_values = values(Tensor::<3>::from_data(random([n, m, k], 8), &device));
        let a = Tensor::<3>::from_data(TensorData::new(a_values.clone(), [n, m, k]), &device);
        // a·aᵀ through a transposed view (read in place), as Newton–Schulz's Gram matrix is.
        let gram = crate::bf16_batched_matmul(&a, &a.clone().swap_dims(1, 2)).expect("flex");
        assert_eq!(gram.dims(), [n, m, m]);
        let gram = values(gram);
        for i in 0..n {
            let x = &a_values[i * m * k..(i + 1) * m * k];
            let expected = reference(x, &transposed(x, [m, k]), [m, k, m]);
            assert!(
                same_bits(&gram[i * m * m..(i + 1) * m * m], &expected),
                "entry {i}"
            );
        }
    });
}
