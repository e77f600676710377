//! From `data.corpus` to the files it names: a file, a directory (searched recursively for
//! the format's extensions, hidden entries such as `.tinygpt-cache` skipped), a glob, or a
//! list of these. Files come out in a fixed order (each entry's files sorted by path) and once
//! each, so the same config always gives the same documents in the same order.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::DataError;
use crate::config::{CorpusSpec, Format};
use crate::store::CACHE_DIR;

/// One input file and how its documents are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub path: PathBuf,
    pub format: Format,
}

/// The files of `spec` (the config key `key`, for messages), with `format` when set.
pub fn resolve(
    spec: &CorpusSpec,
    format: Option<Format>,
    key: &str,
) -> Result<Vec<Source>, DataError> {
    let mut seen = HashSet::new();
    let mut sources = Vec::new();
    for entry in spec.entries() {
        let files = files_of(entry, format, key)?;
        if files.is_empty() {
            let looked_for = match format {
                Some(f) => format!("*.{}", f.extensions().join(", *.")),
                None => "*.txt, *.md".into(),
            };
            return Err(DataError::Config(format!(
                "{key} = {:?} has no files ({looked_for}): put documents there, fix the path, or set data.format",
                entry.display().to_string()
            )));
        }
        for path in files {
            let id = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(id) {
                let format = format.unwrap_or_else(|| Format::of(&path));
                sources.push(Source { path, format });
            }
        }
    }
    Ok(sources)
}

fn files_of(entry: &Path, format: Option<Format>, key: &str) -> Result<Vec<PathBuf>, DataError> {
    let shown = entry.display().to_string();
    if entry.is_file() {
        return Ok(vec![entry.to_path_buf()]);
    }
    if entry.is_dir() {
        let extensions: Vec<&str> = match format {
            Some(f) => f.extensions().to_vec(),
            None => Format::Text.extensions().to_vec(),
        };
        let has_extension = |path: &Path| {
            path.extension().is_some_and(|e| {
                extensions.contains(&e.to_string_lossy().to_ascii_lowercase().as_str())
            })
        };
        return files_under(entry, None, &has_extension);
    }
    if shown.contains(WILDCARDS) {
        let pattern = glob::Pattern::new(&shown).map_err(|e| {
            DataError::Config(format!(
                "{key} = {shown:?} is not a valid glob ({e}): use *, ** and ? as a shell would"
            ))
        })?;
        // The folders named before the first wildcard are walked (they may be hidden ones);
        // below them, as deep as the pattern reaches, each file is matched as a shell would:
        // `*` within one name, `**` across folders.
        let literal: PathBuf = entry
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(WILDCARDS))
            .collect();
        let depth = (!shown.contains("**"))
            .then(|| entry.components().count() - literal.components().count());
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        if !literal.as_os_str().is_empty() && !literal.is_dir() {
            return Ok(Vec::new());
        }
        return files_under(&literal, depth, &|path: &Path| {
            pattern.matches_path_with(path, options)
        });
    }
    match key {
        "data.corpus" => Err(DataError::CorpusMissing { path: entry.into() }),
        _ => Err(DataError::Config(format!(
            "{key} = {shown:?} not found: set {key} to existing files, or remove it"
        ))),
    }
}

/// The characters that make a `data.corpus` entry a glob.
const WILDCARDS: [char; 3] = ['*', '?', '['];

/// The regular files under `dir` (at most `depth` levels down) that `keep` accepts, sorted.
fn files_under(
    dir: &Path,
    depth: Option<usize>,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    walk(dir, depth, keep, &mut files, &mut BTreeSet::new()).map_err(|source| {
        DataError::CorpusUnreadable {
            path: dir.into(),
            source,
        }
    })?;
    files.sort();
    Ok(files)
}

/// Regular files under `dir` that `keep` accepts, skipping hidden files and folders. Links to
/// folders are followed, but each real folder (its canonical path, links resolved) is walked
/// once: `ln -s . again` adds nothing and cannot loop. Paths are `dir` joined with the names
/// below it (`dir` empty: the working directory, paths relative to it).
fn walk(
    dir: &Path,
    depth: Option<usize>,
    keep: &dyn Fn(&Path) -> bool,
    files: &mut Vec<PathBuf>,
    seen: &mut BTreeSet<PathBuf>,
) -> std::io::Result<()> {
    let real = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if depth == Some(0) || !seen.insert(std::fs::canonicalize(real)?) {
        return Ok(());
    }
    for entry in std::fs::read_dir(real)? {
        let path = dir.join(entry?.file_name());
        if hidden(Path::new(&path.file_name().unwrap_or_default())) {
            continue;
        }
        if path.is_dir() {
            walk(&path, depth.map(|d| d - 1), keep, files, seen)?;
        } else if path.is_file() && keep(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// Hidden files and directories (`.git`, `.tinygpt-cache`) are never documents.
fn hidden(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c.starts_with('.') && c != "." && c != ".."
    })
}

/// The deepest directory holding every source.
pub(crate) fn common_dir<'a>(sources: impl IntoIterator<Item = &'a Source>) -> PathBuf {
    let mut dirs = sources
        .into_iter()
        .map(|s| s.path.parent().unwrap_or(Path::new("")).to_path_buf());
    let mut common = dirs.next().unwrap_or_default();
    for dir in dirs {
        while !dir.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

/// The directory beside these sources that holds their token caches and file memo.
pub fn cache_dir(sources: &[Source]) -> PathBuf {
    common_dir(sources).join(CACHE_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_globs_and_lists_in_a_fixed_order() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path();
        for file in [
            "b.txt",
            "a.md",
            "sub/c.txt",
            "sub/d.jsonl",
            "x.csv",
            ".hidden/e.txt",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "text").unwrap();
        }
        let names = |sources: Vec<Source>| -> Vec<String> {
            sources
                .iter()
                .map(|s| {
                    let rel = s.path.strip_prefix(root).unwrap().display().to_string();
                    format!("{rel}:{}", s.format.name())
                })
                .collect()
        };
        let dir = CorpusSpec::One(root.into());
        assert_eq!(
            names(resolve(&dir, None, "data.corpus").unwrap()),
            ["a.md:text", "b.txt:text", "sub/c.txt:text"]
        );
        let jsonl = resolve(&dir, Some(Format::Jsonl), "data.corpus").unwrap();
        assert_eq!(names(jsonl), ["sub/d.jsonl:jsonl"]);
        let glob = CorpusSpec::One(root.join("**/*.*"));
        assert_eq!(
            names(resolve(&glob, None, "data.corpus").unwrap()),
            [
                "a.md:text",
                "b.txt:text",
                "sub/c.txt:text",
                "sub/d.jsonl:jsonl",
                "x.csv:text"
            ]
        );
        // A list keeps its order; a file named twice is read once.
        let list = CorpusSpec::Many(vec![
            root.join("sub"),
            root.join("a.md"),
            root.join("sub/c.txt"),
        ]);
        assert_eq!(
            names(resolve(&list, None, "data.corpus").unwrap()),
            ["sub/c.txt:text", "a.md:text"]
        );
    }

    #[test]
    fn empty_and_missing_entries_are_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let err = resolve(&CorpusSpec::One(scratch.path().into()), None, "data.corpus")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no files (*.txt, *.md)"), "{err}");
        let err = resolve(
            &CorpusSpec::One(scratch.path().join("*.txt")),
            None,
            "data.corpus",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("has no files"), "{err}");
        let err = resolve(
            &CorpusSpec::One(scratch.path().join("gone.txt")),
            None,
            "data.corpus",
        )
        .unwrap_err();
        assert!(matches!(err, DataError::CorpusMissing { .. }), "{err}");
    }
}
