//! Corpora of many documents through the public pipeline: directories, globs and lists, JSONL
//! and Parquet, validation by whole documents, and the BPE's blindness to them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tinygpt_data::pipeline::Input;
use tinygpt_data::{CorpusSpec, DataConfig, Format, Tokenizer, train_bpe};

const EOT: &str = "<|endoftext|>";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Train and val token streams of `config`, and the tokenizer they were encoded with.
fn encode(config: &DataConfig, seed: u64) -> (Vec<u32>, Vec<u32>, Tokenizer) {
    let input = Input::open(config, seed).unwrap();
    let tokenizer = input.build_tokenizer(config).unwrap();
    let encoded = input.encode(config, 4, &tokenizer, &mut |_, _| {}).unwrap();
    (
        encoded.splits.train.all(),
        encoded.splits.val.all(),
        tokenizer,
    )
}

/// The tokens of `docs`, each followed by the end-of-text token.
fn joined(tokenizer: &Tokenizer, docs: &[&str]) -> Vec<u32> {
    let end = tokenizer.end_of_text().unwrap();
    docs.iter()
        .flat_map(|d| {
            let mut ids = tokenizer.encode(d).unwrap();
            ids.push(end);
            ids
        })
        .collect()
}

fn bpe_file(dir: &Path) -> String {
    let text = "the first document and the second one, ✓ with a third\n".repeat(40);
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, train_bpe(&text, 300).unwrap().to_json().unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn directory_glob_and_list_give_the_documents_joined_by_end_of_text() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("corpus");
    let docs = [
        ("a.txt", "the first document\n"),
        ("b.md", "the second ✓\n"),
        ("sub/c.txt", "a third\n\nwith a blank line"),
    ];
    for (name, text) in docs {
        write(&root.join(name), text);
    }
    write(&root.join("notes.csv"), "not, a, document\n");
    // Hidden directories are never documents, for a directory or a glob.
    write(&root.join(".git/HEAD.txt"), "ref: refs/heads/main\n");
    write(&scratch.path().join("val/v.txt"), "held out\n");
    let texts: Vec<&str> = docs.iter().map(|(_, t)| *t).collect();
    for tokenizer in ["char".to_string(), bpe_file(scratch.path())] {
        let config = |corpus: CorpusSpec| DataConfig {
            val_corpus: Some(scratch.path().join("val").into()),
            tokenizer: tokenizer.clone(),
            ..DataConfig::of(corpus)
        };
        let by_dir = encode(&config(root.clone().into()), 1);
        // The cache sits in the deepest directory holding every file.
        assert!(scratch.path().join(".tinygpt-cache").is_dir());
        let by_glob = encode(&config(root.join("**/*.*").into()), 1);
        let list = vec![root.join("a.txt"), root.join("b.md"), root.join("sub")];
        let by_list = encode(&config(CorpusSpec::Many(list)), 1);
        let (train, val, t) = &by_dir;
        assert_eq!(*train, joined(t, &texts), "{tokenizer}");
        assert_eq!(*val, joined(t, &["held out\n"]));
        assert_eq!(t.decode(val).unwrap(), format!("held out\n{EOT}"));
        // The glob also matches notes.csv (as text): everything else is identical.
        assert_eq!(by_list.0, by_dir.0);
        assert_eq!(by_list.1, by_dir.1);
        let csv = joined(&by_glob.2, &["not, a, document\n"]);
        let mut expected = joined(&by_glob.2, &texts[..2]);
        expected.extend(csv);
        expected.extend(joined(&by_glob.2, &texts[2..]));
        assert_eq!(by_glob.0, expected);
    }
}

/// Forty documents of varied text, one of them empty.
fn forty_documents() -> Vec<String> {
    (0..40)
        .map(|i| match i {
            7 => String::new(),
            _ => format!(
                "document {i:02}: {}\n",
                "naïve café, \"quoted\" ✓ ".repeat(i % 5 + 1)
            ),
        })
        .collect()
}

fn write_jsonl(path: &Path, docs: &[String]) {
    let lines: Vec<String> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| serde_json::json!({"id": i, "text": d}).to_string())
        .collect();
    write(path, &(lines.join("\n") + "\n"));
}

/// A Parquet file with the columns `id` and `text` (UTF-8), in row groups of 16 rows.
fn write_parquet(path: &Path, docs: &[String], compression: parquet::basic::Compression) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message dataset { REQUIRED INT64 id; REQUIRED BYTE_ARRAY text (UTF8); }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).unwrap();
    for (group, chunk) in docs.chunks(16).enumerate() {
        let mut rows = writer.next_row_group().unwrap();
        let ids: Vec<i64> = (0..chunk.len()).map(|i| (group * 16 + i) as i64).collect();
        let mut column = rows.next_column().unwrap().unwrap();
        column
            .typed::<Int64Type>()
            .write_batch(&ids, None, None)
            .unwrap();
        column.close().unwrap();
        let texts: Vec<ByteArray> = chunk.iter().map(|d| ByteArray::from(d.as_str())).collect();
        let mut column = rows.next_column().unwrap().unwrap();
        column
            .typed::<ByteArrayType>()
            .write_batch(&texts, None, None)
            .unwrap();
        column.close().unwrap();
        rows.close().unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn jsonl_and_parquet_give_the_tokens_of_the_same_text_documents() {
    let scratch = tempfile::tempdir().unwrap();
    let docs = forty_documents();
    let dir = scratch.path().join("text");
    for (i, d) in docs.iter().enumerate() {
        write(&dir.join(format!("doc-{i:02}.txt")), d);
    }
    // An empty file is no document; a record with empty text would still be one (knowing
    // needs decoding it), so the records hold the documents with text.
    let with_text: Vec<String> = docs.iter().filter(|d| !d.is_empty()).cloned().collect();
    let jsonl = scratch.path().join("docs.jsonl");
    write_jsonl(&jsonl, &with_text);
    let snappy = scratch.path().join("snappy.parquet");
    write_parquet(&snappy, &with_text, parquet::basic::Compression::SNAPPY);
    let zstd = scratch.path().join("zstd.parquet");
    let level = parquet::basic::ZstdLevel::try_new(3).unwrap();
    write_parquet(&zstd, &with_text, parquet::basic::Compression::ZSTD(level));
    let bpe = bpe_file(scratch.path());
    for tokenizer in ["char", bpe.as_str()] {
        let config = |corpus: &Path| DataConfig {
            tokenizer: tokenizer.into(),
            val_fraction: 0.25,
            ..DataConfig::of(corpus.to_path_buf())
        };
        let text = encode(&config(&dir), 9);
        let (train, val, t) = &text;
        // Ten of the 39 documents with text are val (the empty file is in neither stream).
        let count = |ids: &[u32]| {
            ids.iter()
                .filter(|&&id| Some(id) == t.end_of_text())
                .count()
        };
        assert_eq!(count(train) + count(val), 39);
        assert!((9..=10).contains(&count(val)), "{}", count(val));
        for other in [&jsonl, &snappy, &zstd] {
            let (train2, val2, _) = encode(&config(other), 9);
            assert_eq!(&train2, train, "{} with {tokenizer}", other.display());
            assert_eq!(&val2, val, "{} with {tokenizer}", other.display());
        }
        // A format named in the config applies to every file, whatever its extension.
        let renamed = scratch.path().join("docs.data");
        std::fs::copy(&jsonl, &renamed).unwrap();
        let forced = DataConfig {
            format: Some(Format::Jsonl),
            ..config(&renamed)
        };
        assert_eq!(encode(&forced, 9).0, *train);
    }
}

/// The document numbers in a char-decoded stream of `document NN: ...` documents.
fn document_ids(tokenizer: &Tokenizer, ids: &[u32]) -> Vec<usize> {
    let text = tokenizer.decode(ids).unwrap();
    let mut docs: Vec<&str> = text.split(EOT).collect();
    assert_eq!(docs.pop(), Some(""), "every document ends with end-of-text");
    // "document NN: ..."
    docs.iter().map(|d| d[9..11].parse().unwrap()).collect()
}

#[test]
fn val_documents_are_chosen_by_seed_and_never_appear_in_train() {
    let scratch = tempfile::tempdir().unwrap();
    let jsonl = scratch.path().join("docs.jsonl");
    let docs: Vec<String> = (0..50)
        .map(|i| format!("document {i:02}: text\n"))
        .collect();
    write_jsonl(&jsonl, &docs);
    let config = DataConfig {
        val_fraction: 0.2,
        ..DataConfig::of(jsonl.clone())
    };
    let mut choices = Vec::new();
    for seed in [1, 2, 1] {
        let (train, val, t) = encode(&config, seed);
        let (train_ids, val_ids) = (document_ids(&t, &train), document_ids(&t, &val));
        assert_eq!(val_ids.len(), 10);
        assert!(val_ids.iter().all(|id| !train_ids.contains(id)));
        let mut all: Vec<usize> = train_ids.iter().chain(&val_ids).copied().collect();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        // Within each split, documents keep the corpus's order.
        assert!(train_ids.windows(2).all(|w| w[0] < w[1]));
        choices.push(val_ids);
    }
    assert_eq!(
        choices[0], choices[2],
        "the same seed chooses the same documents"
    );
    assert_ne!(choices[0], choices[1], "another seed chooses others");
}

#[test]
fn a_bpe_never_learns_from_val_documents() {
    let scratch = tempfile::tempdir().unwrap();
    let common = "to be or not to be that is the question\n".repeat(6);
    let rare = "zyzzogeton quibbling\n".repeat(6);
    let corpus = scratch.path().join("corpus");
    for i in 0..10 {
        write(&corpus.join(format!("{i}.txt")), &common);
    }
    let bpe = |val: &Path, extra_train: bool| {
        write(&val.join("v.txt"), &rare);
        if extra_train {
            write(&corpus.join("rare.txt"), &rare);
        }
        let config = DataConfig {
            val_corpus: Some(val.to_path_buf().into()),
            tokenizer: "bpe".into(),
            vocab_size: 400,
            ..DataConfig::of(corpus.clone())
        };
        Input::open(&config, 1)
            .unwrap()
            .build_tokenizer(&config)
            .unwrap()
    };
    let unseen = bpe(&scratch.path().join("val1"), false);
    assert!(unseen.encode("zyzzogeton").unwrap().len() > 3);
    let seen = bpe(&scratch.path().join("val2"), true);
    assert_eq!(
        seen.encode("zyzzogeton").unwrap().len(),
        1,
        "control: a train word merges"
    );
}

#[test]
fn bad_documents_stop_the_pass_or_are_counted_when_skipping() {
    let scratch = tempfile::tempdir().unwrap();
    let jsonl = scratch.path().join("docs.jsonl");
    write(
        &jsonl,
        "{\"text\": \"good one\\n\"}\n{\"text\": \"good two\\n\"}\n{\"txt\": \"typo\"}\n{\"text\": \"good three\\n\"}\n",
    );
    let config = DataConfig {
        val_fraction: 0.3,
        ..DataConfig::of(jsonl.clone())
    };
    let input = Input::open(&config, 1).unwrap();
    let err = input.build_tokenizer(&config).unwrap_err().to_string();
    assert!(
        err.contains("docs.jsonl line 3 has no \"text\" field"),
        "{err}"
    );
    let skipping = DataConfig {
        skip_bad_documents: true,
        ..config
    };
    let input = Input::open(&skipping, 1).unwrap();
    let tokenizer = input.build_tokenizer(&skipping).unwrap();
    let encoded = input
        .encode(&skipping, 2, &tokenizer, &mut |_, _| {})
        .unwrap();
    let counts = encoded.documents.unwrap().counts.unwrap();
    assert_eq!(counts.skipped, 1);
    assert_eq!(counts.documents[0] + counts.documents[1], 3);
    assert!(!encoded.splits.train.is_empty());
}

#[test]
fn a_one_file_corpus_is_split_by_position_as_before() {
    let scratch = tempfile::tempdir().unwrap();
    let path: PathBuf = scratch.path().join("one.txt");
    let text = "abcdefghij".repeat(10);
    write(&path, &text);
    let (train, val, t) = encode(&DataConfig::of(path.clone()), 1);
    assert_eq!(
        t.end_of_text(),
        None,
        "no end-of-text token in a one-file vocabulary"
    );
    assert_eq!(t.decode(&train).unwrap(), text[..90]);
    assert_eq!(t.decode(&val).unwrap(), text[90..]);
    // The same file as a one-element list or a directory of one file reads the same way.
    let (train2, val2, _) = encode(&DataConfig::of(CorpusSpec::Many(vec![path])), 1);
    assert_eq!((train2, val2), (train.clone(), val.clone()));
    let (train3, _, _) = encode(&DataConfig::of(scratch.path().to_path_buf()), 1);
    assert_eq!(train3, train);
}
