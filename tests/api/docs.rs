//! The map stays true: every path ARCHITECTURE.md names exists.

/// Every `code span` of `text` that names a path in the repository: it has a slash, or
/// ends in a file extension this repository uses, and holds no spaces or wildcards.
fn named_paths(text: &str) -> Vec<String> {
    let spans = text.split('`').skip(1).step_by(2);
    spans
        .filter(|s| !s.contains(char::is_whitespace) && !s.contains(['*', '<', '{', '(', '=', ':']))
        .filter(|s| !s.starts_with('/') && !s.starts_with("--"))
        .filter(|s| {
            s.contains('/')
                || [".rs", ".md", ".toml", ".py", ".mjs", ".ts", ".css", ".yaml", ".sh"].iter().any(|e| s.ends_with(e))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_path_the_architecture_names_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let paths = named_paths(&text);
    assert!(paths.len() > 40, "too few paths found: {paths:?}");
    // A path is relative to the root, or (a file named beside its folder's row) to one of
    // the folders named before it.
    let folders: Vec<&String> = paths.iter().filter(|p| p.ends_with('/')).collect();
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !root.join(p).exists() && !folders.iter().any(|f| root.join(f).join(p).exists()))
        .collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
}

#[test]
fn a_path_that_does_not_exist_is_caught() {
    let named = named_paths("see `server/src/nowhere.rs` and `a b` and `--flag` and `/api/v1`");
    assert_eq!(named, ["server/src/nowhere.rs"]);
}
