//! What the decision and each option beyond NotifyBC change, measured on the bounce corpus
//! (offline: the subscriber is taken to be the first recipient found). Every option may
//! only change the decisions its description allows, and every figure the README's options
//! table and docs/classifier.md state is asserted here (run with `--nocapture` to see them).
//!
//! Two crafted messages join the corpus for the auto-reply and delay options, since no
//! auto-reply or delay notice of the corpus counts under NotifyBC's rule: an out-of-office
//! reply quoting a `5.x.x` code with the subscriber's address, and a delay notice whose
//! diagnostic mentions an earlier `5.x.x`.

use notify_inbound::classify::{Assessment, Filters, ReportKind, assess};
use notify_inbound::config::{BounceDecision, RawBounce, RawSettings};

mod common;

const CRAFTED_AUTO_REPLY: &str = "From: Bar <bar@foo.com>\r\n\
To: bn-1-abc@notify.example\r\n\
Subject: Out of office: Your weekly notice\r\n\
Auto-Submitted: auto-replied\r\n\
Message-ID: <ooo-1@foo.com>\r\n\
\r\n\
I am away until Monday. Mail to bar@foo.com is read on my return;\r\n\
for urgent matters call the desk (ticket ref 5.1.12).\r\n";

const CRAFTED_DELAY: &str = "From: MAILER-DAEMON@mx.sender.example (Mail Delivery System)\r\n\
To: bn-1-abc@notify.example\r\n\
Subject: Delayed Mail (still being retried)\r\n\
Message-ID: <delay-1@mx.sender.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"d1\"\r\n\
\r\n\
--d1\r\n\
Content-Type: text/plain\r\n\
\r\n\
This is the mail system at host mx.sender.example.\r\n\
\r\n\
####################################################################\r\n\
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n\
####################################################################\r\n\
\r\n\
Your message could not be delivered for more than 4 hour(s).\r\n\
It will be retried until it is 5 day(s) old.\r\n\
\r\n\
<bar@foo.com>: host mail.foo.com[192.0.2.25] said: 451 4.3.0 try again\r\n\
    later (earlier: 554 5.4.0 loop) (in reply to end of DATA command)\r\n\
\r\n\
--d1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.sender.example\r\n\
\r\n\
Final-Recipient: rfc822; bar@foo.com\r\n\
Action: delayed\r\n\
Status: 4.3.0\r\n\
Diagnostic-Code: smtp; 451 4.3.0 try again later (earlier: 554 5.4.0 loop)\r\n\
\r\n\
--d1--\r\n";

// The figures the README and docs/classifier.md state, measured on the 432 corpus emails.
/// Messages NotifyBC's rule counts.
const NOTIFYBC_COUNT: usize = 257;
/// Against NotifyBC's rule, the classifier's decision: messages that start counting
/// (hard bounces the rule misses) and that stop (soft bounces, delays, ... it counts).
const NBC_TO_CLASSIFIER_ON: usize = 28;
const NBC_TO_CLASSIFIER_OFF: usize = 153;
/// No auto-reply or delay notice of the corpus counts under NotifyBC's rule.
const AUTO_OFF_CORPUS: usize = 0;
const DELAY_OFF_CORPUS: usize = 0;
const MULTI_ON: usize = 2;
const DOMAIN_ON: usize = 1;
const DOMAIN_OFF: usize = 1;
const LOCAL_ON: usize = 0;
const LOCAL_OFF: usize = 0;
const PER_COUNT: usize = 133;
const PER_OFF: usize = 152;
const PER_ON: usize = 28;

fn run(emails: &[Vec<u8>], edit: impl FnOnce(&mut RawBounce)) -> Vec<Assessment> {
    let mut b = RawSettings::defaults().unwrap().bounce;
    edit(&mut b);
    let f = Filters::new(&b.validate().unwrap());
    emails.iter().map(|raw| assess(raw, &f, None)).collect()
}

fn notifybc(b: &mut RawBounce) {
    b.decision = BounceDecision::Notifybc;
}

fn counted(a: &[Assessment]) -> usize {
    a.iter().filter(|a| a.counts).count()
}

/// (messages that start counting, messages that stop counting).
fn flips(base: &[Assessment], other: &[Assessment]) -> (usize, usize) {
    let on = base
        .iter()
        .zip(other)
        .filter(|(a, b)| !a.counts && b.counts)
        .count();
    let off = base
        .iter()
        .zip(other)
        .filter(|(a, b)| a.counts && !b.counts)
        .count();
    (on, off)
}

#[test]
fn each_option_changes_only_what_it_says() {
    let corpus = common::corpus::emails();
    assert_eq!(corpus.len(), 432);

    // The default: the classifier decides.
    let default = run(&corpus, |_| {});
    println!(
        "default (classifier): {} of {} count",
        counted(&default),
        corpus.len()
    );
    assert_eq!(counted(&default), 132);
    for a in default.iter().filter(|a| a.counts) {
        let r = &a.verdict.recipients[0];
        assert!(
            r.hard && r.action == "failed" && !r.status.starts_with('4'),
            "{a:?}"
        );
    }
    assert!(default.iter().all(|a| !a.complaint));

    // NotifyBC's rule, and what the classifier changes against it.
    let nbc = run(&corpus, notifybc);
    let (on, off) = flips(&nbc, &default);
    println!(
        "decision = notifybc: {} count; the classifier: {on} start, {off} stop",
        counted(&nbc)
    );
    assert_eq!(
        (counted(&nbc), on, off),
        (NOTIFYBC_COUNT, NBC_TO_CLASSIFIER_ON, NBC_TO_CLASSIFIER_OFF)
    );
    // Every message NotifyBC's rule counts that the classifier does not is soft, a delay,
    // not a bounce, or names no recipient found.
    for (a, b) in nbc.iter().zip(&default) {
        if a.counts && !b.counts {
            assert_ne!(b.why, "counted");
        }
    }

    // The options that read NotifyBC's rule are measured under it.
    let auto = run(&corpus, |b| {
        notifybc(b);
        b.ignore_auto_replies = true;
    });
    let (on, off) = flips(&nbc, &auto);
    println!("notifybc + ignore_auto_replies (corpus): {off} stop, {on} start");
    assert_eq!((on, off), (0, AUTO_OFF_CORPUS));

    let delays = run(&corpus, |b| {
        notifybc(b);
        b.ignore_delays = true;
    });
    let (on, off) = flips(&nbc, &delays);
    println!("notifybc + ignore_delays (corpus): {off} stop, {on} start");
    assert_eq!((on, off), (0, DELAY_OFF_CORPUS));

    let multi = run(&corpus, |b| {
        notifybc(b);
        b.multiple_failed_recipients = true;
    });
    let (on, off) = flips(&nbc, &multi);
    println!("notifybc + multiple_failed_recipients: {on} start, {off} stop");
    assert_eq!(
        (on, off),
        (MULTI_ON, 0),
        "listing more addresses can only add matches"
    );

    let domain = run(&corpus, |b| {
        notifybc(b);
        b.case_insensitive_domain = true;
    });
    let (on, off) = flips(&nbc, &domain);
    println!("notifybc + case_insensitive_domain: {on} start, {off} stop");
    assert_eq!((on, off), (DOMAIN_ON, DOMAIN_OFF));
    let both = run(&corpus, |b| {
        notifybc(b);
        b.case_insensitive_domain = true;
        b.case_insensitive_local_part = true;
    });
    let (on, off) = flips(&domain, &both);
    println!("notifybc + case_insensitive_local_part (beyond _domain): {on} start, {off} stop");
    assert_eq!((on, off), (LOCAL_ON, LOCAL_OFF));
    // Under the classifier the subscriber is the first recipient found, so comparing
    // case-insensitively changes nothing offline.
    let ci = run(&corpus, |b| {
        b.case_insensitive_domain = true;
        b.case_insensitive_local_part = true;
    });
    assert_eq!(flips(&default, &ci), (0, 0));

    let per = run(&corpus, |b| {
        notifybc(b);
        b.per_recipient_status = true;
    });
    let (on, off) = flips(&nbc, &per);
    println!(
        "notifybc + per_recipient_status: {} -> {} ({off} stop, {on} start)",
        counted(&nbc),
        counted(&per)
    );
    assert_eq!((counted(&per), off, on), (PER_COUNT, PER_OFF, PER_ON));
    for a in per
        .iter()
        .filter(|a| a.counts && !a.verdict.recipients.is_empty())
    {
        assert!(a.verdict.recipients[0].hard, "{a:?}");
    }

    // Complaints, under either decision.
    for (name, base, edit) in [
        (
            "classifier",
            &default,
            (|_: &mut RawBounce| {}) as fn(&mut RawBounce),
        ),
        ("notifybc", &nbc, notifybc as fn(&mut RawBounce)),
    ] {
        let complaints = run(&corpus, |b| {
            edit(b);
            b.complaints_unsubscribe = true;
        });
        let (on, off) = flips(base, &complaints);
        let n = complaints.iter().filter(|a| a.complaint).count();
        println!("{name} + complaints_unsubscribe: {n} unsubscribe; {off} stop, {on} start");
        assert_eq!((n, on), (11, 0), "{name}");
        for a in &complaints {
            assert_eq!(
                a.complaint,
                a.verdict.kind == ReportKind::Complaint
                    && a.verdict.feedback_type.as_deref() != Some("not-spam")
            );
        }
    }
}

#[test]
fn auto_replies_and_delays_never_count_under_the_classifier_and_the_options_stop_them() {
    let crafted = vec![
        CRAFTED_AUTO_REPLY.as_bytes().to_vec(),
        CRAFTED_DELAY.as_bytes().to_vec(),
    ];
    let nbc = run(&crafted, notifybc);
    assert_eq!(nbc[0].verdict.kind, ReportKind::AutoReply, "{:?}", nbc[0]);
    assert_eq!(nbc[1].verdict.kind, ReportKind::Delay, "{:?}", nbc[1]);
    // NotifyBC's rule counts both: a 5.x.x and the address are in the text.
    assert!(nbc[0].counts && nbc[1].counts, "{nbc:?}");

    let auto = run(&crafted, |b| {
        notifybc(b);
        b.ignore_auto_replies = true;
    });
    assert!(!auto[0].counts && auto[1].counts);
    assert_eq!(auto[0].why, "ignore_auto_replies");

    let delays = run(&crafted, |b| {
        notifybc(b);
        b.ignore_delays = true;
    });
    assert!(delays[0].counts && !delays[1].counts);
    assert_eq!(delays[1].why, "ignore_delays");

    let default = run(&crafted, |_| {});
    assert_eq!(default[0].why, "auto_reply");
    assert_eq!(default[1].why, "delayed");
    assert!(default.iter().all(|a| !a.counts));
}
