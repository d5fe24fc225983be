//! What each option beyond NotifyBC changes, measured on the bounce corpus: every option
//! may only change the decisions its description allows. The figures are printed (run
//! with `--nocapture`) and quoted in docs/classifier.md.

use notify_inbound::classify::{Assessment, Filters, MessageKind, assess};
use notify_inbound::config::{BounceSettings, Settings};

mod common;

fn run(emails: &[Vec<u8>], edit: impl FnOnce(&mut BounceSettings)) -> Vec<Assessment> {
    let mut b = Settings::defaults().unwrap().bounce;
    edit(&mut b);
    let f = Filters::new(&b).unwrap();
    emails.iter().map(|raw| assess(raw, &f, None)).collect()
}

/// (counted before, counted after, messages that started counting, stopped counting).
fn flips(base: &[Assessment], other: &[Assessment]) -> (usize, usize, usize, usize) {
    let before = base.iter().filter(|a| a.counts).count();
    let after = other.iter().filter(|a| a.counts).count();
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
    (before, after, on, off)
}

#[test]
fn each_option_changes_only_what_it_says() {
    let emails = common::corpus::emails();
    let base = run(&emails, |_| {});
    let counted = base.iter().filter(|a| a.counts).count();
    println!(
        "default (NotifyBC): {counted} of {} messages count",
        emails.len()
    );
    assert!(base.iter().all(|a| !a.complaint));

    let auto = run(&emails, |b| b.ignore_auto_replies = true);
    let (_, _, on, off) = flips(&base, &auto);
    println!("ignore_auto_replies: {off} stop counting, {on} start");
    assert_eq!(on, 0);
    for (a, b) in base.iter().zip(&auto) {
        if a.counts != b.counts {
            assert_eq!(b.verdict.kind, MessageKind::AutoReply);
            assert_eq!(b.why, "ignore_auto_replies");
        }
    }

    let delays = run(&emails, |b| b.ignore_delays = true);
    let (_, _, on, off) = flips(&base, &delays);
    println!("ignore_delays: {off} stop counting, {on} start");
    assert_eq!(on, 0);
    for (a, b) in base.iter().zip(&delays) {
        if a.counts != b.counts {
            assert_eq!(b.verdict.kind, MessageKind::Delay);
        }
    }

    let complaints = run(&emails, |b| b.complaints_unsubscribe = true);
    let (_, _, on, off) = flips(&base, &complaints);
    let n = complaints.iter().filter(|a| a.complaint).count();
    println!("complaints_unsubscribe: {n} complaints unsubscribe; {off} stop counting, {on} start");
    assert_eq!(on, 0);
    assert!(n > 0);
    for a in &complaints {
        assert_eq!(
            a.complaint,
            a.verdict.kind == MessageKind::Complaint
                && a.verdict.feedback_type.as_deref() != Some("not-spam")
        );
    }

    let multi = run(&emails, |b| b.multiple_failed_recipients = true);
    let (_, _, on, off) = flips(&base, &multi);
    println!("multiple_failed_recipients: {on} start counting, {off} stop");
    assert_eq!(off, 0, "listing more addresses can only add matches");

    let domain = run(&emails, |b| b.case_insensitive_domain = true);
    let (_, _, on, off) = flips(&base, &domain);
    println!("case_insensitive_domain: {on} start counting, {off} stop");
    let both = run(&emails, |b| {
        b.case_insensitive_domain = true;
        b.case_insensitive_local_part = true;
    });
    let (_, _, on2, off2) = flips(&base, &both);
    println!("case_insensitive_domain + _local_part: {on2} start counting, {off2} stop");

    let per = run(&emails, |b| b.per_recipient_status = true);
    let (before, after, on, off) = flips(&base, &per);
    println!("per_recipient_status: {before} -> {after} counted ({off} stop, {on} start)");
    for a in per
        .iter()
        .filter(|a| a.counts && !a.verdict.recipients.is_empty())
    {
        // Counted under this option means the first recipient is a hard bounce.
        assert!(a.verdict.recipients[0].hard, "{a:?}");
    }
    // Soft bounces that NotifyBC counts (mailbox full, blocked, ...) stop counting.
    let soft_counted = base
        .iter()
        .filter(|a| a.counts && a.verdict.recipients.first().is_some_and(|r| !r.hard))
        .count();
    println!("  of which NotifyBC counted with a soft first recipient: {soft_counted}");
    assert!(off >= soft_counted);
    assert!(off > 0);
}
