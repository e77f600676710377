//! Corpora of many documents end to end: `tinygpt tokenize` and `train` on directories,
//! JSONL and Parquet, a cache that notices any changed file, and bad input named in one line.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;

fn write(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `tinygpt tokenize --json` of `corpus` with the tiny config and `extra` arguments.
fn tokenize(corpus: &str, extra: &[&str]) -> std::process::Output {
    let set = format!("data.corpus={corpus}");
    let mut args = vec![
        "tokenize",
        "--json",
        "--config",
        "configs/tiny-test.toml",
        "--set",
        &set,
    ];
    args.extend(extra);
    tinygpt(&args)
}

fn report(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(stdout(out).trim()).unwrap()
}

/// Sixty JSONL stories.
fn stories() -> String {
    (0..60)
        .map(|i| {
            let text = format!("once upon a time there was story {i}. the end.\n");
            serde_json::json!({ "id": i, "text": text }).to_string() + "\n"
        })
        .collect()
}

#[test]
fn a_directory_is_tokenized_into_documents_and_a_changed_file_is_encoded_again() {
    let scratch = Scratch::new("corpora-dir");
    for i in 0..12 {
        write(
            &scratch.path(&format!("docs/{i:02}.txt")),
            format!("the tale of number {i}\n").repeat(20),
        );
    }
    let dir = scratch.str("docs");
    let first = report(&tokenize(&dir, &[]));
    assert_eq!(first["files"], 12);
    assert_eq!(first["reused"], false);
    // 12 documents: round(12 × 0.1) = 1 val, 11 train.
    assert_eq!(
        (
            first["train_documents"].as_u64(),
            first["val_documents"].as_u64()
        ),
        (Some(11), Some(1))
    );
    assert_eq!(report(&tokenize(&dir, &[]))["reused"], true);
    // One file of twelve changes: the cache key notices.
    write(
        &scratch.path("docs/05.txt"),
        "the tale of number 55\n".repeat(20),
    );
    let changed = report(&tokenize(&dir, &[]));
    assert_eq!(changed["reused"], false);
    assert_ne!(changed["cache"], first["cache"]);
    // The human-readable report counts documents.
    let out = tinygpt_ok(&[
        "tokenize",
        "--config",
        "configs/tiny-test.toml",
        "--set",
        &format!("data.corpus={dir}"),
    ]);
    let text = stdout(&out);
    assert!(text.contains("12 file(s)"), "{text}");
}

#[test]
fn a_model_trains_and_resumes_on_jsonl_documents_and_samples_stop_at_their_end() {
    let scratch = Scratch::new("corpora-train");
    write(&scratch.path("stories.jsonl"), stories());
    let corpus = format!("data.corpus={}", scratch.str("stories.jsonl"));
    let run = scratch.str("run");
    train_tiny(
        &run,
        &[
            "--set",
            &corpus,
            "--set",
            "train.max_steps=40",
            "--stop-at-step",
            "20",
        ],
    );
    let tokenizer = tinygpt_data::Tokenizer::load(&scratch.path("run/tokenizer.json")).unwrap();
    let end = tokenizer
        .end_of_text()
        .expect("a char vocabulary of documents has end-of-text");
    assert_eq!(end as usize, tokenizer.vocab_size() - 1);
    tinygpt_ok(&["train", "--resume", &run]);
    // A changed corpus is noticed on resume.
    write(
        &scratch.path("stories.jsonl"),
        stories().replace("story 3.", "story 33."),
    );
    let out = tinygpt(&["train", "--resume", &run, "--set", "train.max_steps=60"]);
    assert_clean_error(&out, "changed since the run started");
    // Greedy samples stop at the end of a document unless told to go on: after a whole
    // story, the end-of-text token is what the corpus always has next.
    let sample = |extra: &[&str]| {
        let mut args = vec![
            "sample",
            "--run",
            &run,
            "--temperature",
            "0",
            "--max-new-tokens",
            "60",
        ];
        args.extend(["--prompt", "once upon a time there was story 7. the end.\n"]);
        args.extend(extra);
        stdout(&tinygpt_ok(&args))
    };
    let stopped = sample(&[]);
    let endless = sample(&["--ignore-end-of-text"]);
    let at = endless
        .find("<|endoftext|>")
        .unwrap_or_else(|| panic!("no end of text in {endless:?}"));
    assert_eq!(stopped.trim_end(), endless[..at].trim_end());
}

/// A Parquet file whose only column is `body`.
fn parquet_without_text(path: &Path) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message m { REQUIRED BYTE_ARRAY body (UTF8); }",
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut rows = writer.next_row_group().unwrap();
    let mut column = rows.next_column().unwrap().unwrap();
    let values = ["a document", "another", "a third"].map(ByteArray::from);
    column
        .typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    column.close().unwrap();
    rows.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn bad_input_is_one_line_naming_the_file_and_line_or_skipped_and_counted() {
    let scratch = Scratch::new("corpora-bad");
    std::fs::create_dir_all(scratch.path("empty")).unwrap();
    assert_clean_error(
        &tokenize(&scratch.str("empty"), &[]),
        "has no files (*.txt, *.md)",
    );

    let good = stories();
    write(
        &scratch.path("notjson.jsonl"),
        good.replacen("{\"id\":2,", "{\"id\":2 ", 1),
    );
    assert_clean_error(
        &tokenize(&scratch.str("notjson.jsonl"), &[]),
        "notjson.jsonl line 3 is not JSON",
    );

    write(
        &scratch.path("nofield.jsonl"),
        good.replacen(
            "\"text\":\"once upon a time there was story 4.",
            "\"body\":\"x",
            1,
        ),
    );
    let out = tokenize(&scratch.str("nofield.jsonl"), &[]);
    assert_clean_error(&out, "nofield.jsonl line 5 has no \"text\" field");
    assert!(
        stderr(&out).contains("set data.text_field"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("--skip-bad-documents"),
        "{}",
        stderr(&out)
    );
    // Skipped and counted instead.
    let skipped = report(&tokenize(
        &scratch.str("nofield.jsonl"),
        &["--skip-bad-documents"],
    ));
    assert_eq!(skipped["skipped_documents"], 1);
    assert_eq!(
        skipped["train_documents"].as_u64().unwrap() + skipped["val_documents"].as_u64().unwrap(),
        59
    );

    parquet_without_text(&scratch.path("body.parquet"));
    let out = tokenize(&scratch.str("body.parquet"), &[]);
    assert_clean_error(
        &out,
        "body.parquet has no column \"text\" (it has [\"body\"])",
    );
    // ...which is the column to name.
    let renamed = report(&tokenize(
        &scratch.str("body.parquet"),
        &[
            "--set",
            "data.text_field=body",
            "--set",
            "data.val_corpus=data/shakespeare.txt",
        ],
    ));
    assert_eq!(renamed["train_documents"], 3);

    for i in 0..3 {
        write(
            &scratch.path(&format!("mixed/{i}.txt")),
            "plain text\n".repeat(30),
        );
    }
    write(
        &scratch.path("mixed/1.txt"),
        b"caf\xe9 latin-1\n".repeat(30),
    );
    assert_clean_error(
        &tokenize(&scratch.str("mixed"), &[]),
        "1.txt is not UTF-8 text (invalid byte at offset 3)",
    );
    let skipped = report(&tokenize(
        &scratch.str("mixed"),
        &[
            "--skip-bad-documents",
            "--set",
            "data.val_corpus=data/shakespeare.txt",
        ],
    ));
    assert_eq!(skipped["train_documents"], 2);
    assert_eq!(skipped["skipped_documents"], 1);
}
