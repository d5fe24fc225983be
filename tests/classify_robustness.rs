//! The classifier reads untrusted bytes from the network: cut and damaged versions of
//! every corpus email must still give well-formed verdicts (no panic, addresses that are
//! addresses, decisions that name their filter).

use notify_inbound::classify::{Filters, ReportKind, assess, classify};
use notify_inbound::config::Settings;

mod common;

fn damaged(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in [1, 7, 3, 2] {
        out.push(raw[..raw.len() / n].to_vec());
    }
    out.push(raw[..raw.len().saturating_sub(1)].to_vec());
    // Line ends turned into bare CRs, bytes that are not UTF-8, NULs in the middle.
    out.push(
        raw.iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect(),
    );
    out.push(
        raw.iter()
            .map(|&b| if b == b'e' { 0xE9 } else { b })
            .collect(),
    );
    let mut nul = raw.to_vec();
    nul.insert(raw.len() / 2, 0);
    out.push(nul);
    // Every multipart boundary broken.
    out.push(
        String::from_utf8_lossy(raw)
            .replace("boundary=", "boundary-broken=")
            .into_bytes(),
    );
    out
}

#[test]
fn damaged_messages_give_well_formed_verdicts() {
    let filters = Filters::new(&Settings::defaults().unwrap().bounce);
    let mut checked = 0;
    let mut bounces = 0;
    for raw in common::corpus::emails() {
        for m in damaged(&raw) {
            let v = classify(&m);
            for r in &v.recipients {
                assert!(r.address.contains('@'), "not an address: {:?}", r.address);
                assert!(!r.address.contains(char::is_whitespace), "{:?}", r.address);
                assert!(
                    r.action == "failed" || r.action == "delayed",
                    "{:?}",
                    r.action
                );
                assert!(!r.status.is_empty());
            }
            if v.kind == ReportKind::Bounce {
                bounces += 1;
                assert!(!v.recipients.is_empty());
            }
            let a = assess(&m, &filters, None);
            assert_eq!(a.verdict, v, "assess and classify disagree");
            assert!(!a.why.is_empty());
            assert_eq!(a.counts, a.why == "counted");
            checked += 1;
        }
    }
    assert!(checked > 3000, "{checked}");
    assert!(bounces > 1000, "{bounces}");
}
