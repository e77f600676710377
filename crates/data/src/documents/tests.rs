use super::*;

fn collect(source: &Source) -> (Vec<(u64, String)>, Vec<String>) {
    let (mut docs, mut bad) = (Vec::new(), Vec::new());
    read(source, "text", 1 << 30, &mut |item| {
        match item {
            Item::Document { ordinal, text, .. } => docs.push((ordinal, text.to_string())),
            Item::Bad { error, .. } => bad.push(error.to_string()),
        }
        Ok(())
    })
    .unwrap();
    (docs, bad)
}

#[test]
fn jsonl_lines_are_documents_and_bad_lines_are_named() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("d.jsonl");
    std::fs::write(
        &path,
        "{\"text\": \"one\\n\", \"id\": 1}\n\n{\"text\": \"caf\u{e9}\"}\nnot json\n{\"id\": 3}\n{\"text\": 5}\n[1]\n{\"text\": \"last\"}",
    )
    .unwrap();
    let source = Source {
        path: path.clone(),
        format: Format::Jsonl,
    };
    let (docs, bad) = collect(&source);
    assert_eq!(
        docs,
        [
            // The blank second line is no document and takes no ordinal.
            (0, "one\n".into()),
            (1, "caf\u{e9}".into()),
            (6, "last".into())
        ]
    );
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert!(bad[0].contains("d.jsonl line 4 is not JSON"), "{}", bad[0]);
    assert!(
        bad[1].contains("line 5 has no \"text\" field (it has [\"id\"])"),
        "{}",
        bad[1]
    );
    assert!(
        bad[2].contains("line 6 has \"text\" = a number"),
        "{}",
        bad[2]
    );
    assert!(
        bad[3].contains("line 7 is JSON but not an object"),
        "{}",
        bad[3]
    );
    assert!(bad.iter().all(|e| e.contains("--skip-bad-documents")));
    // Eight lines, one blank, the last without its newline: seven ordinals.
    assert_eq!(facts(&source).unwrap().documents, 7);
}

#[test]
fn a_text_file_is_one_document_mapped_or_read() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("a.txt");
    std::fs::write(&path, "naïve\n").unwrap();
    let source = Source {
        path,
        format: Format::Text,
    };
    for map_from in [1, 1 << 30] {
        let mut docs = Vec::new();
        read(&source, "text", map_from, &mut |item| {
            if let Item::Document { text, .. } = item {
                docs.push(text.to_string());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(docs, ["naïve\n"]);
    }
    let facts = facts(&source).unwrap();
    assert_eq!((facts.bytes, facts.documents), (7, 1));
    assert_eq!(facts.sha256, <[u8; 32]>::from(Sha256::digest("naïve\n")));
}
