//! Reading documents out of files: a text file is one document, a JSONL line one, a Parquet
//! row one. Each document has an ordinal in its file (JSONL: its line among the non-blank
//! ones, as blank lines hold no document; Parquet: its row), so ids stay fixed whichever
//! documents are bad.
//!
//! Documents are handed to a callback one at a time and never collected: a JSONL file is read
//! line by line, a Parquet file row by row (only the text column is decoded), a large text file
//! is memory-mapped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use parquet::basic::Type as PhysicalType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use sha2::{Digest, Sha256};

use crate::config::Format;
use crate::corpus::read_corpus_mapping_from;
use crate::error::Failure;
use crate::sources::Source;
use crate::{Corpus, DataError};

/// What a file yields, in order.
pub enum Item<'a> {
    /// Document `ordinal` of the file; `consumed` bytes of the file are read so far.
    Document {
        ordinal: u64,
        text: &'a Corpus,
        consumed: u64,
    },
    /// `count` documents cannot be read (one, or a whole file's worth).
    Bad { count: u64, error: DataError },
}

/// A file's size, content hash and document count: what a token cache is keyed by.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFacts {
    pub bytes: u64,
    pub sha256: [u8; 32],
    pub documents: u64,
}

/// Hashes `source` and counts its documents in one pass over its bytes.
pub fn facts(source: &Source) -> Result<FileFacts, DataError> {
    let path = &source.path;
    let unreadable = |e: std::io::Error| unreadable(path, e);
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    // JSONL: the lines holding more than (ASCII) whitespace, as `read` numbers them.
    let (mut bytes, mut lines, mut open_line) = (0u64, 0u64, false);
    loop {
        let n = file.read(&mut buffer).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        let block = &buffer[..n];
        hasher.update(block);
        if matches!(source.format, Format::Jsonl | Format::Chat) {
            for &b in block {
                if b == b'\n' {
                    lines += u64::from(open_line);
                    open_line = false;
                } else if !b.is_ascii_whitespace() {
                    open_line = true;
                }
            }
        }
        bytes += n as u64;
    }
    let documents = match source.format {
        // An empty file holds no document (validation must not draw it).
        Format::Text => u64::from(bytes > 0),
        Format::Jsonl | Format::Chat => lines + u64::from(open_line),
        // A file that is not Parquet counts no documents; reading it reports why.
        Format::Parquet => parquet_rows(path).unwrap_or(0),
    };
    Ok(FileFacts {
        bytes,
        sha256: hasher.finalize().into(),
        documents,
    })
}

/// Calls `visit` with each document of `source`, or with the ones that cannot be read.
pub fn read(
    source: &Source,
    text_field: &str,
    map_from_bytes: u64,
    visit: &mut dyn FnMut(Item) -> Result<(), Failure>,
) -> Result<(), Failure> {
    match source.format {
        Format::Text => read_text(&source.path, map_from_bytes, visit),
        Format::Jsonl => read_jsonl(&source.path, &|line| jsonl_text(line, text_field), visit),
        Format::Chat => read_jsonl(&source.path, &conversation_text, visit),
        Format::Parquet => read_parquet(&source.path, text_field, visit),
    }
}

fn unreadable(path: &Path, source: std::io::Error) -> DataError {
    match source.kind() {
        std::io::ErrorKind::NotFound => DataError::CorpusMissing { path: path.into() },
        _ => DataError::CorpusUnreadable {
            path: path.into(),
            source,
        },
    }
}

fn bad(path: &Path, location: String, problem: String) -> DataError {
    DataError::BadDocument {
        path: path.into(),
        location,
        problem,
    }
}

fn read_text(
    path: &Path,
    map_from_bytes: u64,
    visit: &mut dyn FnMut(Item) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let text: Corpus = match read_corpus_mapping_from(path, map_from_bytes) {
        Ok(text) => text,
        // An empty file is an empty document: nothing to learn, nothing wrong.
        Err(DataError::CorpusEmpty { .. }) => return Ok(()),
        Err(DataError::CorpusNotUtf8 { offset, .. }) => {
            let error = bad(
                path,
                String::new(),
                format!("is not UTF-8 text (invalid byte at offset {offset}): convert it to UTF-8"),
            );
            return visit(Item::Bad { count: 1, error });
        }
        Err(e) => return Err(e.into()),
    };
    visit(Item::Document {
        ordinal: 0,
        text: &text,
        consumed: text.len() as u64,
    })
}

/// One JSONL line's document text (`None` for a blank line), or what is wrong with it.
type LineText<'a> = &'a dyn Fn(&[u8]) -> Result<Option<String>, String>;

/// The lines of a JSONL file, each turned into a document's text by `text_of`.
fn read_jsonl(
    path: &Path,
    text_of: LineText,
    visit: &mut dyn FnMut(Item) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let file = std::fs::File::open(path).map_err(|e| unreadable(path, e))?;
    let mut lines = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    // A blank line (ASCII whitespace only) is no document and takes no ordinal, as in `facts`.
    let (mut ordinal, mut number, mut consumed) = (0u64, 0u64, 0u64);
    loop {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| unreadable(path, e))?;
        if n == 0 {
            return Ok(());
        }
        consumed += n as u64;
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // A byte-order mark some editors put first is not part of the JSON.
        let text = match number {
            1 => line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&line),
            _ => &line,
        };
        let item = match text_of(text) {
            Ok(None) => None,
            Ok(Some(text)) => Some(Ok(text)),
            Err(problem) => Some(Err(bad(path, format!(" line {number}"), problem))),
        };
        match item {
            None => {}
            Some(Ok(text)) => visit(Item::Document {
                ordinal,
                text: &Corpus::from(text),
                consumed,
            })?,
            Some(Err(error)) => visit(Item::Bad { count: 1, error })?,
        }
        ordinal += 1;
    }
}

/// One line of a chat corpus as the chat template's text; `None` for a blank line.
fn conversation_text(line: &[u8]) -> Result<Option<String>, String> {
    let Some(value) = line_json(line)? else {
        return Ok(None);
    };
    let messages = crate::chat::messages_of(&value)?;
    if !messages
        .iter()
        .any(|m| m.role == crate::tokenizer::Role::Assistant)
    {
        return Err(
            "has no assistant message: a conversation to learn from needs the assistant's reply"
                .into(),
        );
    }
    Ok(Some(crate::chat::render_text(&messages)))
}

/// One JSONL line as JSON; `None` for a blank line.
fn line_json(line: &[u8]) -> Result<Option<serde_json::Value>, String> {
    let line = std::str::from_utf8(line).map_err(|e| {
        format!(
            "is not UTF-8 (invalid byte at column {}): convert the file to UTF-8",
            e.valid_up_to() + 1
        )
    })?;
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(line)
        .map(Some)
        .map_err(|e| format!("is not JSON ({e}): fix or remove the line"))
}

/// The text of one JSONL line; `None` for a blank line.
fn jsonl_text(line: &[u8], field: &str) -> Result<Option<String>, String> {
    let Some(value) = line_json(line)? else {
        return Ok(None);
    };
    let serde_json::Value::Object(mut object) = value else {
        return Err(format!(
            "is JSON but not an object with a {field:?} field: give each line an object like {{\"{field}\": \"...\"}}"
        ));
    };
    match object.remove(field) {
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(format!(
            "has {field:?} = {}, not a string: every line's {field:?} must be text",
            kind_of(&other)
        )),
        None => {
            let fields: Vec<&String> = object.keys().take(8).collect();
            Err(format!(
                "has no {field:?} field (it has {fields:?}): set data.text_field to the field holding the text"
            ))
        }
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn open_parquet(path: &Path) -> Result<SerializedFileReader<std::fs::File>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    SerializedFileReader::new(file).map_err(|e| {
        format!("is not a readable Parquet file ({e}): export it again or set data.format")
    })
}

/// Why `path` cannot be read as Parquet (cut off, damaged, another format), if it cannot.
pub fn parquet_problem(path: &Path) -> Option<DataError> {
    open_parquet(path)
        .err()
        .map(|problem| bad(path, String::new(), problem))
}

fn parquet_rows(path: &Path) -> Option<u64> {
    let reader = open_parquet(path).ok()?;
    u64::try_from(reader.metadata().file_metadata().num_rows()).ok()
}

fn read_parquet(
    path: &Path,
    text_field: &str,
    visit: &mut dyn FnMut(Item) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let rows = parquet_rows(path).unwrap_or(0);
    let whole_file = |problem: String| Item::Bad {
        count: rows,
        error: bad(path, String::new(), problem),
    };
    let reader = match open_parquet(path) {
        Ok(reader) => reader,
        Err(problem) => return visit(whole_file(problem)),
    };
    let schema = reader.metadata().file_metadata().schema();
    let Some(column) = schema.get_fields().iter().find(|f| f.name() == text_field) else {
        let columns: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
        return visit(whole_file(format!(
            "has no column {text_field:?} (it has {columns:?}): set data.text_field to the column holding the text"
        )));
    };
    if !column.is_primitive() || column.get_physical_type() != PhysicalType::BYTE_ARRAY {
        return visit(whole_file(format!(
            "column {text_field:?} does not hold strings: set data.text_field to a string column"
        )));
    }
    let projection = Type::group_type_builder(schema.name())
        .with_fields(vec![column.clone()])
        .build()
        .map_err(|e| bad(path, String::new(), e.to_string()))?;
    let iter = match reader.get_row_iter(Some(projection)) {
        Ok(iter) => iter,
        Err(e) => return visit(whole_file(format!("cannot be read ({e}): repair the file"))),
    };
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    for (ordinal, row) in (0u64..).zip(iter) {
        let consumed = size * (ordinal + 1) / rows.max(1);
        let location = format!(" row {}", ordinal + 1);
        let text = match row {
            Ok(row) => match row.into_columns().pop().map(|(_, field)| field) {
                Some(Field::Str(text)) => Ok(text),
                Some(Field::Bytes(bytes)) => String::from_utf8(bytes.data().to_vec())
                    .map_err(|_| "is not UTF-8 text: convert the column to UTF-8".to_string()),
                Some(Field::Null) | None => Err(format!(
                    "has no {text_field:?} (null): fill it or drop the row"
                )),
                Some(_) => Err(format!("{text_field:?} is not a string")),
            },
            Err(e) => {
                let mut e = e.to_string();
                e.truncate(120);
                Err(format!("cannot be read ({e}): repair the file"))
            }
        };
        match text {
            Ok(text) => visit(Item::Document {
                ordinal,
                text: &Corpus::from(text),
                consumed,
            })?,
            Err(problem) => visit(Item::Bad {
                count: 1,
                error: bad(path, location, problem),
            })?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
