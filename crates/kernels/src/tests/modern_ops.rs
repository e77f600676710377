//! The fused ops of the modern recipe against their plain twins (burn's ops): ReLU², the
//! soft-cap, and queries and keys placed (QK-norm, RoPE) on the packed projection, values and
//! gradients.

use burn::tensor::Tensor;

use super::{max_abs_diff, random, training_device};
use crate::heads::split_heads;
use crate::{RotaryTables, gelu, placed, plain_relu2, plain_softcap, rms_norm, rotate};

#[test]
fn fused_relu2_and_softcap_match_the_plain_ops_and_their_gradients() {
    let device = training_device();
    type Fused = fn(&Tensor<3>) -> Option<Tensor<3>>;
    type Plain = fn(Tensor<3>) -> Tensor<3>;
    let ops: [(&str, Fused, Plain); 2] = [
        ("relu2", |x| gelu::relu2(x), plain_relu2),
        (
            "softcap",
            |x| gelu::softcap(x, 1.5),
            |x| plain_softcap(x, 1.5),
        ),
    ];
    for (name, fused, plain) in ops {
        let run = |use_fused: bool| {
            let x = Tensor::<3>::from_data(random([3, 41, 37], 41), &device).require_grad();
            let y = if use_fused {
                fused(&x).expect("flex with autodiff is fused")
            } else {
                plain(x.clone())
            };
            let upstream = Tensor::<3>::from_data(random([3, 41, 37], 42), &device);
            let grads = (y.clone() * upstream).sum().backward();
            (y, x.grad(&grads).unwrap())
        };
        let (f, p) = (run(true), run(false));
        let (values, grads) = (max_abs_diff(f.0, p.0), max_abs_diff(f.1, p.1));
        assert!(values < 1e-5, "{name}: values differ by {values}");
        assert!(grads < 1e-5, "{name}: gradients differ by {grads}");
    }
}

/// The plain path of placing: split, each head normalised (no gain) and rotated, rejoined.
fn plain_place(
    qkv: Tensor<3>,
    n_head: usize,
    eps: Option<f64>,
    r: Option<&RotaryTables>,
) -> Tensor<3> {
    let [b, t, w] = qkv.dims();
    let c = w / 3;
    let part = |k: usize| {
        let mut heads = qkv
            .clone()
            .narrow(2, k * c, c)
            .reshape([b, t, n_head, c / n_head]);
        if let Some(eps) = eps {
            heads = rms_norm(heads, None, eps);
        }
        if let Some(r) = r {
            heads = rotate(heads, r);
        }
        heads.reshape([b, t, c])
    };
    Tensor::cat(vec![part(0), part(1), qkv.clone().narrow(2, 2 * c, c)], 2)
}

#[test]
fn fused_placing_of_queries_and_keys_matches_the_plain_ops_and_their_gradients() {
    let device = training_device();
    let (batch, time, n_head, d) = (2, 37, 3, 8);
    let tables = RotaryTables::new(0, time, d, 10_000.0, &device);
    for (eps, rotary) in [
        (Some(1e-5), Some(&tables)),
        (None, Some(&tables)),
        (Some(1e-5), None),
    ] {
        let run = |fused: bool| {
            let qkv = Tensor::<3>::from_data(random([batch, time, 3 * n_head * d], 43), &device)
                .require_grad();
            let y = if fused {
                placed::place(&qkv, n_head, eps, rotary).expect("flex with autodiff is fused")
            } else {
                plain_place(qkv.clone(), n_head, eps, rotary)
            };
            let upstream =
                Tensor::<3>::from_data(random([batch, time, 3 * n_head * d], 44), &device);
            let grads = (y.clone() * upstream).sum().backward();
            (y, qkv.grad(&grads).unwrap())
        };
        let (f, p) = (run(true), run(false));
        let (values, grads) = (max_abs_diff(f.0.clone(), p.0), max_abs_diff(f.1, p.1));
        assert!(
            values < 1e-5,
            "eps {eps:?}, rope {}: values differ by {values}",
            rotary.is_some()
        );
        assert!(
            grads < 1e-4,
            "eps {eps:?}, rope {}: gradients differ by {grads}",
            rotary.is_some()
        );
        // the values part passes through untouched
        let v = split_heads(f.0.narrow(2, 2 * n_head * d, n_head * d), n_head);
        assert_eq!(v.dims(), [batch, n_head, time, d]);
    }
}
