//! Tests of the training loop: overfitting, gradient accumulation, metrics and checkpoints.
use super::*;
use crate::config::TrainConfig;
use crate::tensors::to_vec;
use tinygpt_kernels::Precision;
use tinygpt_model::GptConfig;

fn model_config() -> GptConfig {
    GptConfig {
        vocab_size: 13,
        block_size: 12,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        dropout: 0.0,
        bias: true,
        tie_embeddings: true,
        activation: Default::default(),
        layer_norm_eps: 1e-5,
        ..GptConfig::default()
    }
}

fn device() -> Device {
    Device::flex().autodiff()
}

fn tokens(n: usize) -> Vec<u32> {
    // A stream with some structure but no short period.
    (0..n).map(|i| ((i * 7 + i / 5) % 13) as u32).collect()
}

fn stream(n: usize) -> tinygpt_data::Tokens {
    tokens(n).into()
}

#[test]
fn overfits_one_fixed_batch() {
    let device = device();
    let mut model = Gpt::new(&model_config(), 0, &device).unwrap();
    let mut optim = Optimizer::new(&TrainConfig {
        weight_decay: 0.0,
        ..TrainConfig::default()
    });
    let batch = BatchSampler::new(0, 4, 12).sample(&stream(500));
    let mut loss = f64::INFINITY;
    for _ in 0..300 {
        let (next, l, _) = optimizer_step(
            model,
            &mut optim,
            std::slice::from_ref(&batch),
            [3e-3, 1.0],
            Precision::Fp32,
            &device,
        );
        model = next;
        loss = scalar(l);
    }
    assert!(loss < 0.1, "loss after 300 steps on one batch: {loss}");
}

#[test]
fn accumulating_two_half_batches_equals_one_full_batch() {
    let device = device();
    let data = stream(2000);
    let full = BatchSampler::new(9, 8, 12).sample(&data);
    let mut halves = BatchSampler::new(9, 4, 12);
    let halves = [halves.sample(&data), halves.sample(&data)];
    // The sampler draws window starts in order, so the halves are the full batch split.
    assert_eq!(halves[0].inputs, full.inputs[..48]);

    let train = TrainConfig::default();
    let run = |batches: &[Batch]| {
        let model = Gpt::new(&model_config(), 1, &device).unwrap();
        let mut optim = Optimizer::new(&train);
        let (model, loss, norm) = optimizer_step(
            model,
            &mut optim,
            batches,
            [1e-2, 1.0],
            Precision::Fp32,
            &device,
        );
        let (model, _, _) = optimizer_step(
            model,
            &mut optim,
            batches,
            [1e-2, 1.0],
            Precision::Fp32,
            &device,
        );
        (
            to_vec(model.blocks[0].attn.query.weight.val()),
            scalar(loss),
            scalar(norm),
        )
    };
    let (w_full, loss_full, norm_full) = run(&[full]);
    let (w_acc, loss_acc, norm_acc) = run(&halves);
    assert!(
        (loss_full - loss_acc).abs() < 1e-5,
        "{loss_full} vs {loss_acc}"
    );
    assert!(
        (norm_full - norm_acc).abs() < 1e-4,
        "{norm_full} vs {norm_acc}"
    );
    let max_diff = w_full
        .iter()
        .zip(&w_acc)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_diff < 1e-5, "weights differ by {max_diff}");
}

#[test]
fn validation_loss_falls_when_training_on_structured_data() {
    let device = device();
    let config = RunConfig {
        model: model_config(),
        data: crate::config::DataConfig::of("unused"),
        train: TrainConfig {
            batch_size: 8,
            max_steps: 40,
            lr: 3e-3,
            warmup_steps: 5,
            eval_interval: 20,
            eval_batches: 2,
            log_interval: 10,
            ..TrainConfig::default()
        },
    };
    let splits = Splits::new(tokens(3000), 0.1, 12).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let trainer = Trainer {
        config: &config,
        splits: &splits,
        device: device.clone(),
        checkpoints: dir.join("checkpoints"),
        hashes: Hashes {
            corpus_sha256: "c".into(),
            tokenizer_sha256: "t".into(),
        },
        stop_at_step: None,
        interrupt: Default::default(),
        val_bytes_per_token: 1.0,
        collective: &crate::collective::Alone,
        conversations: None,
    };
    let mut metrics = MetricsWriter::create(&dir.join("metrics.jsonl")).unwrap();
    let model = Gpt::new(&config.model, 0, &device).unwrap();
    let start = Start::fresh(model, &config);
    let (_, summary) = trainer.run(start, &mut metrics, &mut Quiet).unwrap();
    let initial = summary.initial_val_loss.unwrap();
    assert!(
        summary.val_loss < initial - 0.5,
        "{initial} -> {}",
        summary.val_loss
    );
    // A checkpoint every 500 steps by default: only the final one (step 40) exists.
    let saved: Vec<usize> = checkpoint::list(&dir.join("checkpoints"))
        .unwrap()
        .iter()
        .map(|(step, _)| *step)
        .collect();
    assert_eq!(saved, vec![40]);

    let lines = crate::run::metrics::read_metrics(&dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<usize> = lines.iter().map(|l| l.step).collect();
    assert_eq!(steps, vec![0, 10, 20, 30, 40]);
    let evals: Vec<usize> = lines
        .iter()
        .filter(|l| l.val_loss.is_some())
        .map(|l| l.step)
        .collect();
    assert_eq!(evals, vec![0, 20, 40]);
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.train_loss.is_some() && l.lr.is_some() && l.tokens_per_sec.is_some())
    );
    assert_eq!(lines[4].tokens, 40 * 8 * 12);
}

/// Mean loss over 4 fixed held-out batches of `data`.
fn held_out_loss(model: &Gpt, data: &tinygpt_data::Tokens, device: &Device) -> f64 {
    let mut sampler = BatchSampler::new(99, 8, 12);
    let mut total = 0.0;
    for _ in 0..4 {
        let (inputs, targets) = crate::tensors::batch_tensors(&sampler.sample(data), device);
        total += scalar(tinygpt_model::cross_entropy(model.forward(inputs), targets));
    }
    total / 4.0
}

#[test]
fn muon_lowers_the_loss_faster_than_adamw_at_equal_steps() {
    // The same modern model, data, batches and schedule; only the optimizer of the blocks'
    // matrices differs (AdamW keeps the embeddings and head either way).
    let device = device();
    let config = GptConfig {
        positions: tinygpt_model::Positions::Rope,
        norm: tinygpt_model::NormKind::RmsNorm,
        norm_weight: false,
        qk_norm: true,
        activation: tinygpt_model::Activation::Relu2,
        init: tinygpt_model::Init::Modern,
        tie_embeddings: false,
        bias: false,
        ..model_config()
    };
    let data = stream(4000);
    let train_for = |optimizer| {
        let train = TrainConfig {
            optimizer,
            lr: 3e-3,
            muon_lr: 0.02,
            muon_momentum_warmup: 0,
            weight_decay: 0.0,
            ..TrainConfig::default()
        };
        let mut model = Gpt::new(&config, 3, &device).unwrap();
        let mut optim = Optimizer::new(&train);
        let mut sampler = BatchSampler::new(5, 8, 12);
        for _ in 0..40 {
            let batch = sampler.sample(&data);
            let (next, _, _) = optimizer_step(
                model,
                &mut optim,
                &[batch],
                [train.lr, 1.0],
                Precision::Fp32,
                &device,
            );
            model = next;
        }
        (held_out_loss(&model, &data, &device), optim)
    };
    let (adamw, _) = train_for(crate::config::OptimizerKind::Adamw);
    let (muon, optim) = train_for(crate::config::OptimizerKind::Muon);
    assert!(
        muon < adamw - 0.05,
        "Muon {muon} vs AdamW {adamw} after 40 steps"
    );
    // Muon took every block matrix (2 blocks × 6), AdamW the embedding and head only.
    let muon_state = optim.muon.as_ref().unwrap();
    assert_eq!(
        muon_state.buffers.len(),
        2 * 6,
        "{:?}",
        muon_state.buffers.keys()
    );
    assert!(muon_state.buffers.keys().all(|k| k.starts_with("blocks.")));
    let mut adam_keys: Vec<&String> = optim.moments.keys().collect();
    adam_keys.sort();
    assert_eq!(adam_keys, ["token_embedding.weight", "unembedding.weight"]);
}
