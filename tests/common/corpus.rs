//! The bounce corpus the classifier tests read (`tests/corpus/bounces/emails`).

use std::path::Path;

/// Every message of the corpus, in file-name order.
pub fn emails() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bounces/emails");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}
