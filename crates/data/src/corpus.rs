//! Reading a corpus: one UTF-8 text file.

use std::path::Path;

use crate::DataError;

/// Reads the whole corpus, refusing missing, empty and non-UTF-8 files with a clear error.
pub fn read_corpus(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::CorpusMissing { path: path.into() },
        _ => DataError::CorpusUnreadable {
            path: path.into(),
            source,
        },
    })?;
    if bytes.is_empty() {
        return Err(DataError::CorpusEmpty { path: path.into() });
    }
    String::from_utf8(bytes).map_err(|e| DataError::CorpusNotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tinygpt-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_text_and_refuses_bad_files() {
        assert_eq!(read_corpus(&temp("ok.txt", b"hi\n")).unwrap(), "hi\n");
        let err = read_corpus(&temp("empty.txt", b"")).unwrap_err();
        assert!(matches!(err, DataError::CorpusEmpty { .. }), "{err}");
        let err = read_corpus(&temp("latin1.txt", b"caf\xe9")).unwrap_err();
        assert!(
            matches!(err, DataError::CorpusNotUtf8 { offset: 3, .. }),
            "{err}"
        );
        let err = read_corpus(Path::new("/nonexistent/corpus.txt")).unwrap_err();
        assert!(err.to_string().contains("set data.corpus"), "{err}");
    }
}
