//! One hand-written message per report format, language and reading rule the classifier
//! recognises (`tests/corpus/formats/`, each written from the format's documented
//! structure), with the verdict it must give: the kind, and every recipient with hard or
//! soft. docs/classifier.md lists the formats and languages.

use std::path::Path;

use notify_inbound::classify::{Filters, ReportKind, assess, classify};
use notify_inbound::config::Settings;

use ReportKind::{AutoReply, Bounce, Complaint, Delay};

const HARD: bool = true;
const SOFT: bool = false;

/// The recipients in report order, each with hard (true) or soft.
type Recipients = &'static [(&'static str, bool)];

/// File, kind, and its recipients.
const EXPECTED: &[(&str, ReportKind, Recipients)] = &[
    // Which address
    (
        "exchange-smtp-tag.eml",
        Bounce,
        &[("kijitora@example.net", HARD)],
    ),
    (
        "exim-undisclosed.eml",
        Bounce,
        &[("mikeneko@example.org", HARD)],
    ),
    ("help-text.eml", Bounce, &[("shironeko@example.com", HARD)]),
    (
        "original-recipient-forwarded.eml",
        Bounce,
        &[("hachi.old@mail.example.org", HARD)],
    ),
    // Hard or soft
    (
        "generic-status-unknown-wordings.eml",
        Bounce,
        &[("kotora@example.jp", HARD), ("shiro@example.jp", SOFT)],
    ),
    (
        "generic-status-plain-wording.eml",
        Bounce,
        &[("kuroneko@example.jp", HARD)],
    ),
    (
        "policy-status-specific-wording.eml",
        Bounce,
        &[("mikeneko@example.jp", HARD)],
    ),
    (
        "sendmail-transcript.eml",
        Bounce,
        &[("hachiware@example.net", HARD)],
    ),
    (
        "rejected-but-full.eml",
        Bounce,
        &[("sabineko@example.jp", SOFT)],
    ),
    (
        "rejected-by-policy.eml",
        Bounce,
        &[("chatora@example.jp", SOFT)],
    ),
    // Formats
    ("aol-inline-dsn.eml", Bounce, &[("tora@example.com", HARD)]),
    (
        "groupwise-undeliverable.eml",
        Bounce,
        &[("jdoe@gw.example.com", HARD)],
    ),
    (
        "netscape-messaging-server.eml",
        Bounce,
        &[("jdoe@ns.example.com", HARD)],
    ),
    (
        "compuserve-receiver.eml",
        Bounce,
        &[("jdoe@cs.example.com", HARD)],
    ),
    (
        "imail-mailbox-size.eml",
        Bounce,
        &[("jdoe@imail.example.com", SOFT)],
    ),
    (
        "exchange55-not-reached.eml",
        Bounce,
        &[("jdoe@ex.example.com", HARD)],
    ),
    (
        "yahoo-html-only.eml",
        Bounce,
        &[("buchi@example.org", SOFT)],
    ),
    (
        "mdaemon-transcript.eml",
        Bounce,
        &[("sakura@example.co.jp", HARD)],
    ),
    (
        "domino-failure.eml",
        Bounce,
        &[("kuro@notes.example.com", HARD)],
    ),
    (
        "domino-nab.eml",
        Bounce,
        &[("maru@lotus.example.org", HARD)],
    ),
    ("qmail-remote.eml", Bounce, &[("mugi@example.com", HARD)]),
    (
        "qmail-local.eml",
        Bounce,
        &[
            ("azuki@example.ne.jp", HARD),
            ("kinako@example.ne.jp", SOFT),
        ],
    ),
    (
        "ses-sns-envelope.eml",
        Bounce,
        &[("kome@example.com", HARD)],
    ),
    (
        "ses-transient-prose.eml",
        Bounce,
        &[("mochi@example.org", SOFT)],
    ),
    ("ses-complaint.eml", Complaint, &[]),
    (
        "dsn-in-multipart-mixed.eml",
        Bounce,
        &[("kabocha@example.com", HARD)],
    ),
    (
        "forwarded-report.eml",
        Bounce,
        &[("goma@example.org", HARD)],
    ),
    ("body-only-report.eml", Bounce, &[("ume@example.jp", HARD)]),
    // OpenSMTPD reports an envelope dropped at the end of its queue lifetime as "delayed".
    (
        "opensmtpd-expired.eml",
        Bounce,
        &[("hotaru@example.com", SOFT)],
    ),
    // Never a hard bounce
    ("vacation-mentions-failure.eml", AutoReply, &[]),
    ("vacation-with-recipient-line.eml", AutoReply, &[]),
    ("delay-warning.eml", Delay, &[("nori@example.com", SOFT)]),
    // Languages: user unknown is hard, a full mailbox soft
    ("de-gmx-unknown.eml", Bounce, &[("karl@example.de", HARD)]),
    ("de-webde-full.eml", Bounce, &[("greta@example.de", SOFT)]),
    (
        "fr-orange-unknown.eml",
        Bounce,
        &[("jeanne@example.fr", HARD)],
    ),
    ("fr-free-full.eml", Bounce, &[("luc@example.fr", SOFT)]),
    ("es-unknown.eml", Bounce, &[("pablo@example.es", HARD)]),
    ("es-full.eml", Bounce, &[("lucia@example.es", SOFT)]),
    (
        "pt-uol-unknown.eml",
        Bounce,
        &[("joao@example.com.br", HARD)],
    ),
    ("pt-full.eml", Bounce, &[("maria@example.com.br", SOFT)]),
    (
        "it-libero-unknown.eml",
        Bounce,
        &[("marco@example.it", HARD)],
    ),
    ("it-full.eml", Bounce, &[("giulia@example.it", SOFT)]),
    ("nl-kpn-unknown.eml", Bounce, &[("jan@example.nl", HARD)]),
    ("nl-full.eml", Bounce, &[("anna@example.nl", SOFT)]),
    ("pl-wp-unknown.eml", Bounce, &[("piotr@example.pl", HARD)]),
    ("pl-full.eml", Bounce, &[("ewa@example.pl", SOFT)]),
    (
        "ru-mailru-unknown.eml",
        Bounce,
        &[("ivan@example.ru", HARD)],
    ),
    ("ru-yandex-full.eml", Bounce, &[("olga@example.ru", SOFT)]),
    (
        "ja-docomo-unknown.eml",
        Bounce,
        &[("taro@example.ne.jp", HARD)],
    ),
    ("ja-au-full.eml", Bounce, &[("hanako@example.ne.jp", SOFT)]),
    ("zh-qq-unknown.eml", Bounce, &[("wang@example.cn", HARD)]),
    ("zh-163-full.eml", Bounce, &[("li@example.cn", SOFT)]),
    (
        "ko-naver-unknown.eml",
        Bounce,
        &[("minsu@example.kr", HARD)],
    ),
    ("ko-daum-full.eml", Bounce, &[("jiyeon@example.kr", SOFT)]),
];

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/formats")
}

#[test]
fn every_format_gives_its_verdict() {
    let mut wrong = Vec::new();
    for (file, kind, recipients) in EXPECTED {
        let raw = std::fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let v = classify(&raw);
        let got: Vec<(String, bool)> = v
            .recipients
            .iter()
            .map(|r| (r.address.to_ascii_lowercase(), r.hard))
            .collect();
        let want: Vec<(String, bool)> = recipients
            .iter()
            .map(|(a, h)| (a.to_string(), *h))
            .collect();
        if v.kind != *kind || got != want {
            wrong.push(format!(
                "{file}: expected {kind:?} {want:?}, got {:?} {got:?} ({:?})",
                v.kind,
                v.recipients
                    .iter()
                    .map(|r| (r.reason, r.status.as_str(), r.diagnostic.as_str()))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn every_fixture_has_an_expectation() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".eml"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(f, ..)| f.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn the_ses_complaint_names_the_complainant() {
    let raw = std::fs::read(dir().join("ses-complaint.eml")).unwrap();
    let v = classify(&raw);
    assert_eq!(v.complainant.as_deref(), Some("dango@example.net"));
    assert_eq!(v.feedback_type.as_deref(), Some("abuse"));
}

/// A forward rewrote the subscriber's address: the report names the final address and
/// keeps the original one, and the subscriber (the original address) is the one it counts
/// for.
#[test]
fn a_forwarded_address_counts_for_the_original_recipient() {
    let raw = std::fs::read(dir().join("original-recipient-forwarded.eml")).unwrap();
    let v = classify(&raw);
    assert_eq!(v.recipients.len(), 1);
    assert_eq!(
        v.recipients[0].original_recipient.as_deref(),
        Some("hachi@example.net")
    );
    let f = Filters::new(&Settings::defaults().unwrap().bounce);
    let counted = assess(&raw, &f, Some("hachi@example.net"));
    assert!(counted.counts, "{}", counted.why);
    let final_too = assess(&raw, &f, Some("hachi.old@mail.example.org"));
    assert!(final_too.counts, "{}", final_too.why);
    let someone_else = assess(&raw, &f, Some("other@example.net"));
    assert!(!someone_else.counts);
}
