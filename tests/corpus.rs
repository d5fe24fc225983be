//! Scores the classifier against the bounce corpus's reference verdicts with the corpus's
//! own scorer (`tests/corpus/bounces/score.py`) and fails below the project's thresholds:
//! recipient recall 0.97, recipient precision 0.98, hard/soft agreement 0.97.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use notify_inbound::classify::classify;

const RECALL: f64 = 0.97;
const PRECISION: f64 = 0.98;
const HARD_AGREEMENT: f64 = 0.97;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bounces")
}

/// The figures of score.py's last line:
/// `hard-agreement X recipient-recall Y recipient-precision Z n=N`.
fn summary(line: &str) -> (f64, f64, f64, usize) {
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.len(), 7, "unexpected summary line: {line}");
    assert_eq!(
        (w[0], w[2], w[4]),
        ("hard-agreement", "recipient-recall", "recipient-precision"),
        "unexpected summary line: {line}"
    );
    let f = |s: &str| {
        s.parse::<f64>()
            .unwrap_or_else(|_| panic!("not a figure: {s} in {line}"))
    };
    let n = w[6]
        .strip_prefix("n=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no n= in {line}"));
    (f(w[1]), f(w[3]), f(w[5]), n)
}

#[test]
fn corpus_scores_above_thresholds() {
    let dir = corpus();
    let mut emails: Vec<PathBuf> = std::fs::read_dir(dir.join("emails"))
        .expect("tests/corpus/bounces/emails")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    emails.sort();
    assert!(emails.len() >= 400, "corpus incomplete: {}", emails.len());

    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&results).unwrap());
    for path in &emails {
        let raw = std::fs::read(path).unwrap();
        let v = classify(&raw);
        let line = serde_json::json!({
            "source": path.display().to_string(),
            "kind": v.kind,
            "recipients": v.recipients,
        });
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    if let Ok(keep) = std::env::var("CLASSIFY_CORPUS_RESULTS") {
        std::fs::copy(&results, keep).unwrap();
    }

    // No python3 is a failure with the reason, never a skip.
    let output = Command::new("python3")
        .arg(dir.join("score.py"))
        .arg(dir.join("expected.jsonl"))
        .arg(&results)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 for tests/corpus/bounces/score.py ({e}); install Python 3")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "score.py failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let (hard, recall, precision, n) = summary(last);
    assert_eq!(n, emails.len(), "score.py saw a different number of emails");
    assert!(
        !stdout.contains("results not matched to an expected email"),
        "some results did not match an expected email:\n{stdout}"
    );
    assert!(
        recall >= RECALL,
        "recipient recall {recall} < {RECALL}\n{stdout}"
    );
    assert!(
        precision >= PRECISION,
        "recipient precision {precision} < {PRECISION}\n{stdout}"
    );
    assert!(
        hard >= HARD_AGREEMENT,
        "hard agreement {hard} < {HARD_AGREEMENT}\n{stdout}"
    );
}
