//! Loss and learning-rate curves of runs, as `tinygpt plot` and the training loop's
//! `loss.png` draw them.

use std::path::Path;

use anyhow::{Result, bail};
use tinygpt_train::run::RunDir;
use tinygpt_train::run::metrics::{MetricsLine, read_metrics};
use tinygpt_viz::{Curve, Panel, line_charts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    Step,
    Tokens,
}

/// Redraws `DIR/loss.png` from the run's metrics.
pub fn refresh_run_plot(run: &RunDir) -> Result<()> {
    let runs = [(run_name(&run.path), run_metrics(run)?)];
    line_charts(
        &run.loss_plot(),
        &panels(&runs, XAxis::Step, false),
        1000,
        420,
    )?;
    Ok(())
}

pub fn run_metrics(run: &RunDir) -> Result<Vec<MetricsLine>> {
    let lines = read_metrics(&run.metrics())?;
    if lines.is_empty() {
        bail!(
            "{} is empty: the run has not logged a step yet",
            run.metrics().display()
        );
    }
    Ok(lines)
}

pub fn run_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// What gets drawn: a loss panel (train solid, val dashed, one colour per run) and an LR panel.
pub fn panels(runs: &[(String, Vec<MetricsLine>)], x: XAxis, log: bool) -> Vec<Panel> {
    let x_of = |l: &MetricsLine| match x {
        XAxis::Step => l.step as f64,
        XAxis::Tokens => l.tokens as f64,
    };
    let series = |lines: &[MetricsLine], y: fn(&MetricsLine) -> Option<f64>| -> Vec<(f64, f64)> {
        lines
            .iter()
            .filter_map(|l| y(l).map(|v| (x_of(l), v)))
            .collect()
    };
    let mut losses = Vec::new();
    let mut lrs = Vec::new();
    for (i, (name, lines)) in runs.iter().enumerate() {
        losses.push(Curve {
            label: format!("{name} train"),
            points: series(lines, |l| l.train_loss),
            dashed: false,
            color: i,
        });
        losses.push(Curve {
            label: format!("{name} val"),
            points: series(lines, |l| l.val_loss),
            dashed: true,
            color: i,
        });
        lrs.push(Curve {
            label: name.clone(),
            points: series(lines, |l| l.lr),
            dashed: false,
            color: i,
        });
    }
    let x_label = match x {
        XAxis::Step => "step",
        XAxis::Tokens => "tokens seen",
    };
    vec![
        Panel {
            title: "loss".into(),
            x_label: x_label.into(),
            y_label: "cross-entropy (nats/token)".into(),
            log_y: log,
            curves: losses,
        },
        Panel {
            title: "learning rate".into(),
            x_label: x_label.into(),
            y_label: "lr".into(),
            log_y: false,
            curves: lrs,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(step: usize, train: f64, val: Option<f64>) -> MetricsLine {
        MetricsLine {
            step,
            train_loss: Some(train),
            val_loss: val,
            lr: Some(1e-3),
            tokens: step as u64 * 100,
            ..Default::default()
        }
    }

    #[test]
    fn two_runs_give_labelled_train_and_val_curves_of_their_data() {
        let a = vec![line(10, 3.0, None), line(20, 2.5, Some(2.6))];
        let b = vec![line(10, 3.5, Some(3.4))];
        let p = panels(&[("a".into(), a), ("b".into(), b)], XAxis::Tokens, true);
        let labels: Vec<&str> = p[0].curves.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["a train", "a val", "b train", "b val"]);
        assert_eq!(p[0].curves[0].points, vec![(1000.0, 3.0), (2000.0, 2.5)]);
        assert_eq!(p[0].curves[1].points, vec![(2000.0, 2.6)]);
        assert!(p[0].curves[1].dashed && !p[0].curves[0].dashed);
        assert_eq!((p[0].curves[2].color, p[0].curves[3].color), (1, 1));
        assert!(p[0].log_y);
        assert_eq!(p[1].curves.len(), 2);
    }
}
