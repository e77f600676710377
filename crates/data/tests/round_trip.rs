//! decode(encode(x)) == x on the whole shipped corpus, for the char tokenizer and a byte-level
//! BPE, through the token cache that training reads.

use std::path::Path;

use tinygpt_data::cache::load_or_encode;
use tinygpt_data::one_file::OneFile;
use tinygpt_data::{CharTokenizer, Tokenizer, read_corpus, split_text, train_bpe};

fn shakespeare_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/shakespeare.txt")
}

fn shakespeare() -> tinygpt_data::Corpus {
    read_corpus(&shakespeare_path()).unwrap()
}

fn round_trip(tokenizer: &Tokenizer, name: &str) {
    let text = shakespeare();
    // A private copy's path, so the test's cache files stay out of data/.
    let scratch = tempfile::tempdir().unwrap();
    let corpus = scratch.path().join("shakespeare.txt");
    std::fs::copy(shakespeare_path(), &corpus).unwrap();
    let file = OneFile::open(&corpus).unwrap();
    let (train, val, info) = load_or_encode(&file, tokenizer, 0.1, &mut |_, _| {}).unwrap();
    assert!(info.path.is_some() && !info.reused);
    let decoded = tokenizer.decode(&train.all()).unwrap() + &tokenizer.decode(&val.all()).unwrap();
    assert!(decoded == *text, "{name}: the decoded corpus differs");
}

#[test]
fn char_round_trips_the_whole_corpus() {
    let text = shakespeare();
    round_trip(&Tokenizer::Char(CharTokenizer::from_corpus(&text)), "char");
}

#[test]
fn bpe_round_trips_the_whole_corpus() {
    let text = shakespeare();
    let (train, _) = split_text(&text, 0.1).unwrap();
    round_trip(&train_bpe(train, 1024).unwrap(), "bpe");
}
