//! Every crate reads one way: no source file reaches, through the files it uses, back to
//! itself. A circle means a reader cannot follow the code from its first stage to its last
//! (CONTRIBUTING.md: each module uses only the ones before it).
//!
//! A file's uses are its `crate::`, `super::` and `self::` paths (grouped imports included),
//! paths through the child modules it declares, and names the crate root re-exports (a
//! `crate::Corpus` is a use of the file that defines `Corpus`). The root itself and the tests
//! (`mod tests`, `tests/` folders) are left out: the root only declares and re-exports.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::workspace_root;

/// A module path inside a crate: `[]` is the root, `["cache", "writer"]` is `cache/writer.rs`.
type Module = Vec<String>;

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module a source file under `src/` defines, or `None` for test modules.
fn module_of(relative: &Path) -> Option<Module> {
    let mut parts: Module = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.iter().any(|p| p == "tests") {
        return None;
    }
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    Some(parts)
}

/// The code of a file before its `#[cfg(test)] mod tests`.
fn code_of(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let after = text[from + at + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod tests") {
            return &text[..from + at];
        }
        from += at + 1;
    }
    text
}

/// Reads the path that starts at `at` in `code`: `::a::b`, `::{a, b::{c, self}}`. Returns the
/// paths it names, each relative to what came before `at`.
fn read_paths(code: &[char], mut at: usize) -> Vec<Module> {
    let mut prefix = Module::new();
    loop {
        if code[at..].starts_with(&[':', ':']) {
            at += 2;
        } else {
            return vec![prefix];
        }
        if code.get(at) == Some(&'{') {
            return read_group(code, at + 1)
                .into_iter()
                .map(|tail| {
                    let mut path = prefix.clone();
                    path.extend(tail.into_iter().filter(|p| p != "self"));
                    path
                })
                .collect();
        }
        let end = (at..code.len())
            .find(|&i| !is_ident(code[i]))
            .unwrap_or(code.len());
        if end == at {
            return vec![prefix];
        }
        prefix.push(code[at..end].iter().collect());
        at = end;
    }
}

/// The paths inside a `{...}` group starting at `at` (just after the brace).
fn read_group(code: &[char], mut at: usize) -> Vec<Module> {
    let mut paths = Vec::new();
    loop {
        while code.get(at).is_some_and(|c| c.is_whitespace() || *c == ',') {
            at += 1;
        }
        match code.get(at) {
            None | Some('}') => return paths,
            Some('{') => {
                paths.extend(read_group(code, at + 1));
            }
            Some(_) => {
                let end = (at..code.len())
                    .find(|&i| !is_ident(code[i]))
                    .unwrap_or(code.len());
                if end == at {
                    at += 1;
                    continue;
                }
                let head: String = code[at..end].iter().collect();
                for tail in read_paths(code, end) {
                    let mut path = vec![head.clone()];
                    path.extend(tail);
                    paths.push(path);
                }
            }
        }
        // Skip to the end of this item (a comma at this depth) or of the group.
        let mut depth = 0;
        while let Some(&c) = code.get(at) {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => return paths,
                '}' => depth -= 1,
                ',' if depth == 0 => break,
                _ => {}
            }
            at += 1;
        }
    }
}

/// Every path in `code` that starts with one of `heads` (whole words, not after `::`), with
/// its head.
fn paths_from(code: &str, heads: &BTreeSet<String>) -> Vec<(String, Module)> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let end = (i..chars.len())
            .find(|&j| !is_ident(chars[j]))
            .unwrap_or(chars.len());
        let word: String = chars[i..end].iter().collect();
        if heads.contains(&word) && chars[end..].starts_with(&[':', ':']) {
            for tail in read_paths(&chars, end) {
                found.push((word.clone(), tail));
            }
        }
        i = end;
    }
    found
}

/// The child modules a file declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn declared_children(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.split_once("mod ")?;
            let visibility = rest.0.trim();
            if !(visibility.is_empty() || visibility.starts_with("pub")) {
                return None;
            }
            let name = rest.1.strip_suffix(';')?;
            name.chars().all(is_ident).then(|| name.to_string())
        })
        .collect()
}

/// The names the crate root re-exports (`pub use a::b::{C, D};`), with the paths they stand for.
fn root_exports(root: &str) -> BTreeMap<String, Module> {
    let mut exports = BTreeMap::new();
    for statement in code_of(root).split(';') {
        let Some((_, rest)) = statement.split_once("pub use ") else {
            continue;
        };
        let chars: Vec<char> = format!("::{rest}").chars().collect();
        for path in read_paths(&chars, 0) {
            if let Some(name) = path.last() {
                exports.insert(name.clone(), path.clone());
            }
        }
    }
    exports
}

/// A crate's file graph: each module and the modules it uses.
struct Graph {
    files: BTreeMap<Module, PathBuf>,
    uses: BTreeMap<Module, BTreeSet<Module>>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn graph_of(src: &Path) -> Graph {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let mut files = BTreeMap::new();
    for path in paths {
        let relative = path.strip_prefix(src).unwrap().to_path_buf();
        if let Some(module) = module_of(&relative) {
            files.insert(module, relative);
        }
    }
    let root = files
        .get(&Module::new())
        .map(|r| std::fs::read_to_string(src.join(r)).unwrap())
        .unwrap_or_default();
    let exports = root_exports(&root);
    // The file a path lands in: its longest prefix that is a file, or through a root export.
    let resolve = |path: &Module| -> Option<Module> {
        let mut path = path.clone();
        if let Some(first) = path.first()
            && !files.contains_key(&vec![first.clone()])
            && let Some(target) = exports.get(first)
        {
            path.splice(0..1, target.iter().cloned());
        }
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|prefix| files.contains_key(prefix))
    };
    let mut uses = BTreeMap::new();
    for (module, relative) in &files {
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(src.join(relative)).unwrap();
        let code = code_of(&text);
        let children = declared_children(code);
        let mut heads: BTreeSet<String> = ["crate", "super", "self"].map(String::from).into();
        heads.extend(children.iter().cloned());
        let mut used = BTreeSet::new();
        for (head, tail) in paths_from(code, &heads) {
            let mut path = match head.as_str() {
                "crate" => Module::new(),
                "self" => module.clone(),
                "super" => module[..module.len() - 1].to_vec(),
                child => [module.clone(), vec![child.to_string()]].concat(),
            };
            let ups = tail.iter().take_while(|p| *p == "super").count();
            path.truncate(path.len().saturating_sub(ups));
            path.extend(tail.into_iter().skip(ups));
            if let Some(target) = resolve(&path)
                && &target != module
                && !target.is_empty()
            {
                used.insert(target);
            }
        }
        uses.insert(module.clone(), used);
    }
    Graph { files, uses }
}

/// The circles of a graph: groups of two or more files that each reach all the others.
fn circles(graph: &Graph) -> Vec<Vec<PathBuf>> {
    let reach = |from: &Module| -> BTreeSet<Module> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in graph.uses.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&Module, BTreeSet<Module>> =
        graph.uses.keys().map(|m| (m, reach(m))).collect();
    let mut placed = BTreeSet::new();
    let mut out = Vec::new();
    for (m, reached) in &reaches {
        if placed.contains(*m) || !reached.contains(*m) {
            continue;
        }
        let circle: Vec<&Module> = reached
            .iter()
            .filter(|other| reaches[*other].contains(*m))
            .collect();
        placed.extend(circle.iter().map(|c| (*c).clone()));
        out.push(circle.iter().map(|c| graph.files[*c].clone()).collect());
    }
    out
}

#[test]
fn no_file_of_any_crate_imports_in_a_circle() {
    let crates = workspace_root().join("crates");
    let mut found = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        let graph = graph_of(&src);
        files += graph.files.len();
        for circle in circles(&graph) {
            let names: Vec<String> = circle.iter().map(|f| f.display().to_string()).collect();
            found.push(format!("{}: {}", src.display(), names.join(" <-> ")));
        }
    }
    assert!(files > 100, "read only {files} files");
    assert!(
        found.is_empty(),
        "files that import each other in a circle (move what they share into a file both use):\n{}",
        found.join("\n")
    );
}

/// The reader finds what a crate's files really use, and a circle when there is one.
#[test]
fn the_reader_sees_grouped_imports_children_re_exports_and_circles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("stage")).unwrap();
    let write = |name: &str, text: &str| std::fs::write(src.join(name), text).unwrap();
    write(
        "lib.rs",
        "mod leaf;\nmod stage;\nmod top;\npub use leaf::{Leaf, other::Thing};\n",
    );
    write("leaf.rs", "pub struct Leaf;\n");
    write(
        "stage/mod.rs",
        "mod inner;\npub use inner::Inner;\nuse crate::{Leaf, top::{self}};\n",
    );
    write(
        "stage/inner.rs",
        "/// Used: [`super::super::leaf`].\npub struct Inner(crate::Leaf);\n",
    );
    write(
        "top.rs",
        "pub fn f() { let _ = crate::stage::Inner; }\n#[cfg(test)]\nmod tests { use crate::leaf; }\n",
    );
    let graph = graph_of(&src);
    let m = |s: &str| -> Module { s.split('/').map(String::from).collect() };
    assert_eq!(
        graph.uses[&m("stage")],
        [m("leaf"), m("stage/inner"), m("top")].into()
    );
    assert_eq!(graph.uses[&m("stage/inner")], [m("leaf")].into());
    assert_eq!(graph.uses[&m("top")], [m("stage")].into());
    assert_eq!(graph.uses[&m("leaf")], BTreeSet::new());
    assert_eq!(
        circles(&graph),
        [vec![PathBuf::from("stage/mod.rs"), PathBuf::from("top.rs")]]
    );
}
