//! Classifier throughput over the bounce corpus: messages per second on one core, for
//! `classify` alone and for `assess` with the default (NotifyBC) filters.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use notify_inbound::classify::{Filters, assess, classify};
use notify_inbound::config::Settings;

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bounces/emails");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/corpus/bounces/emails")
        .map(|e| e.expect("directory entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("corpus email"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let emails = corpus();
    let filters = Filters::new(&Settings::defaults().expect("defaults").bounce);
    let mut group = c.benchmark_group("corpus");
    group.throughput(Throughput::Elements(emails.len() as u64));
    group.bench_function("classify", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for raw in &emails {
                found += classify(std::hint::black_box(raw)).recipients.len();
            }
            found
        })
    });
    group.bench_function("assess", |b| {
        b.iter(|| {
            let mut counted = 0usize;
            for raw in &emails {
                counted += usize::from(assess(std::hint::black_box(raw), &filters, None).counts);
            }
            counted
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
