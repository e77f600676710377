//! `tinygpt params`: where a model's parameters are, matrix by matrix, from the config alone.

use std::path::PathBuf;

use anyhow::Result;
use tinygpt_train::model_config::model_config;

use tinygpt_train::run::RunDir;

use crate::param_table::table;

#[derive(Debug, clap::Args)]
pub struct ParamsArgs {
    /// A run config (only its [model] section is read).
    #[arg(
        long,
        conflicts_with = "run",
        default_value = "configs/shakespeare-char.toml"
    )]
    pub config: PathBuf,
    /// A run directory (its resolved config).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Override a config key, e.g. --set model.n_layer=12 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn params_command(args: ParamsArgs) -> Result<()> {
    let path = match &args.run {
        Some(dir) => RunDir::open(dir)?.config(),
        None => args.config.clone(),
    };
    let config = model_config(&path, &args.overrides)?;
    out!("{}", table(&config, &path.display().to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bpe_config_counts_the_bpe_vocabulary_not_the_corpus_characters() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let bpe = root.join("configs/shakespeare-bpe.toml");
        let config = model_config(&bpe, &[]).unwrap();
        assert_eq!(config.vocab_size, 1024);
        let config = model_config(&bpe, &["data.vocab_size=2048".into()]).unwrap();
        assert_eq!(config.vocab_size, 2048);
        let config = model_config(&bpe, &["model.n_layer=2".into()]).unwrap();
        assert_eq!(config.n_layer, 2);
    }
}
