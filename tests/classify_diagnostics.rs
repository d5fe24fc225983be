//! One diagnostic per line of the kind real reports carry, each inside an RFC 3464 report,
//! with the hard-or-soft verdict and the reason the classifier must read from it: the
//! wordings of the big providers and MTAs, generic statuses beside plain and vague
//! wordings, policy refusals worded close to "rejected", a block list named beside mailbox
//! wording, and a reply that echoes the refused `RCPT TO`. docs/classifier.md explains the
//! rules ("Reasons, and hard versus soft").

#[path = "common/dsn.rs"]
mod dsn;

use dsn::Dsn;
use notify_inbound::classify::{Reason, classify};

/// Status, diagnostic, hard, reason.
const CASES: &[(&str, &str, bool, Reason)] = &[
    (
        "5.1.10",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.1.1",
        "550-5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "552 1 Requested mail action aborted, mailbox not found [RCPT_TO]",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.2.2",
        "552-5.2.2 The recipient's inbox is out of storage space",
        false,
        Reason::MailboxFull,
    ),
    (
        "5.0.0",
        "The recipient's inbox is out of storage space. Please direct the recipient to",
        false,
        Reason::MailboxFull,
    ),
    (
        "5.2.1",
        "550 5.2.1 The email account that you tried to reach is disabled.",
        false,
        Reason::Suspend,
    ),
    (
        "5.7.1",
        "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        false,
        Reason::Blocked,
    ),
    (
        "5.7.1",
        "554 5.7.1 Message rejected due to content restrictions",
        false,
        Reason::Blocked,
    ),
    (
        "4.0.0",
        "retry time not reached for any host after a long failure period",
        false,
        Reason::Expired,
    ),
    (
        "5.4.4",
        "Host or domain name not found. Name service error for name=example.invalid type=A: Host not found",
        true,
        Reason::HostUnknown,
    ),
    ("5.0.0", "550 mailbox is inactive", false, Reason::Suspend),
    ("5.0.0", "550 Inbox full", false, Reason::MailboxFull),
    (
        "4.3.0",
        "451 4.3.0 Temporary lookup failure",
        false,
        Reason::NetworkError,
    ),
    (
        "5.0.0",
        "550 5.0.0 Mailbox unavailable or access denied",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
        false,
        Reason::Blocked,
    ),
    ("5.0.0", "550 Sender verify failed", false, Reason::Rejected),
    (
        "5.0.0",
        "554 Transaction failed: message too big",
        false,
        Reason::MesgTooBig,
    ),
    (
        "5.0.0",
        "550 Message was not accepted -- invalid mailbox.  Local mailbox jdoe@example.com is unavailable: user is terminated",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 Address rejected: recipient is not in this domain's user list",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 #5.1.0 Address rejected jdoe@example.com",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "554 30 Sorry, your message to jdoe@example.com cannot be delivered.  This account has been disabled or discontinued [#102].",
        false,
        Reason::Suspend,
    ),
    (
        "5.0.0",
        "554 delivery error: dd Sorry your message to jdoe@example.com cannot be delivered. This mailbox is disabled (554.30). - mta",
        false,
        Reason::Suspend,
    ),
    (
        "5.0.0",
        "550 5.0.0 <jdoe@example.com>... User is unknown",
        false,
        Reason::Filtered,
    ),
    (
        "5.0.0",
        "550 Requested action not taken: no such user here",
        false,
        Reason::Filtered,
    ),
    (
        "5.0.0",
        "550 RCPT TO:<jdoe@example.com> User unknown",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "smtp; 550 5.2.1 Mailbox unavailable. Your IP address 192.0.2.1 is blacklisted using RBL",
        false,
        Reason::Blocked,
    ),
    (
        "5.0.0",
        "550 5.7.606 Access denied, banned sending IP [192.0.2.1]",
        false,
        Reason::Blocked,
    ),
    (
        "5.0.0",
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 Unrouteable address",
        true,
        Reason::HostUnknown,
    ),
    (
        "5.0.0",
        "550 The mail server could not deliver mail to jdoe@example.com.  The account or domain may not exist, they may be blacklisted, or missing the proper dns entries.",
        true,
        Reason::HostUnknown,
    ),
    (
        "5.0.0",
        "550 5.1.1 <jdoe@example.com>: Email address could not be found, or was misspelled (G8)",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 Mailbox quota exceeded",
        false,
        Reason::MailboxFull,
    ),
    (
        "5.0.0",
        "552 Message size exceeds fixed maximum message size",
        false,
        Reason::MesgTooBig,
    ),
    (
        "5.0.0",
        "550 Unknown local part jdoe in <jdoe@example.com>",
        true,
        Reason::UserUnknown,
    ),
    ("5.0.0", "550 Not our customer", true, Reason::UserUnknown),
    (
        "5.0.0",
        "550 Administrative prohibition",
        false,
        Reason::Undefined,
    ),
    (
        "5.0.0",
        "550 Recipient unknown. Please see http://",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 This recipient does not exist",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 User has moved; please try <jdoe@example.org>",
        true,
        Reason::HasMoved,
    ),
    (
        "5.0.0",
        "550 5.1.1 Mailbox does not exist",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 The recipient does not have a mailbox on this server",
        true,
        Reason::UserUnknown,
    ),
    (
        "5.0.0",
        "550 user disabled; cannot receive new mail",
        false,
        Reason::Suspend,
    ),
    ("4.0.0", "452 4.2.2 Over quota", false, Reason::MailboxFull),
    (
        "4.0.0",
        "421 4.7.0 Try again later, closing connection. (RCPT)",
        false,
        Reason::TooManyConn,
    ),
];

/// Language, diagnostic (under a generic `5.0.0`), hard, reason: the user-unknown and
/// mailbox-full wordings of each language's large providers.
const LANGUAGES: &[(&str, &str, bool, Reason)] = &[
    (
        "de",
        "Die E-Mail-Adresse des Empfängers existiert nicht",
        true,
        Reason::UserUnknown,
    ),
    ("de", "Benutzer unbekannt", true, Reason::UserUnknown),
    (
        "de",
        "Das Postfach des Empfängers ist voll",
        false,
        Reason::MailboxFull,
    ),
    (
        "de",
        "Mailbox voll / Speicherplatz überschritten",
        false,
        Reason::MailboxFull,
    ),
    (
        "fr",
        "Adresse email du destinataire introuvable",
        true,
        Reason::UserUnknown,
    ),
    (
        "fr",
        "L'adresse e-mail n'existe pas",
        true,
        Reason::UserUnknown,
    ),
    (
        "fr",
        "La boîte aux lettres du destinataire est pleine",
        false,
        Reason::Undefined,
    ),
    ("es", "El usuario no existe", true, Reason::UserUnknown),
    (
        "es",
        "La dirección de correo no existe",
        true,
        Reason::UserUnknown,
    ),
    (
        "es",
        "El buzón del destinatario está lleno",
        false,
        Reason::Undefined,
    ),
    (
        "pt",
        "O endereço de e-mail não existe",
        true,
        Reason::UserUnknown,
    ),
    ("pt", "Caixa de correio cheia", false, Reason::MailboxFull),
    (
        "it",
        "L'indirizzo email non esiste",
        true,
        Reason::UserUnknown,
    ),
    ("it", "Utente sconosciuto", true, Reason::UserUnknown),
    (
        "it",
        "La casella di posta è piena",
        false,
        Reason::MailboxFull,
    ),
    (
        "nl",
        "Het e-mailadres bestaat niet",
        true,
        Reason::UserUnknown,
    ),
    ("nl", "Mailbox is vol", false, Reason::MailboxFull),
    ("pl", "Adres e-mail nie istnieje", true, Reason::UserUnknown),
    (
        "pl",
        "Skrzynka odbiorcy jest pełna",
        false,
        Reason::MailboxFull,
    ),
    ("ru", "Адрес не существует", true, Reason::UserUnknown),
    ("ru", "Такого пользователя нет", true, Reason::UserUnknown),
    ("ru", "Почтовый ящик переполнен", false, Reason::MailboxFull),
    (
        "ja",
        "宛先のメールアドレスは存在しません",
        true,
        Reason::UserUnknown,
    ),
    (
        "ja",
        "メールボックスの容量を超えています",
        false,
        Reason::Undefined,
    ),
    ("zh", "该用户不存在", true, Reason::UserUnknown),
    ("zh", "收件人邮箱已满", false, Reason::MailboxFull),
    (
        "ko",
        "받는 사람의 메일 주소가 존재하지 않습니다",
        true,
        Reason::UserUnknown,
    ),
    (
        "ko",
        "수신자의 메일함이 가득 찼습니다",
        false,
        Reason::MailboxFull,
    ),
    (
        "sv",
        "Mottagarens adress finns inte",
        true,
        Reason::UserUnknown,
    ),
    ("tr", "Alıcı adresi bulunamadı", true, Reason::UserUnknown),
    ("cs", "Uživatel neexistuje", true, Reason::UserUnknown),
];

fn report(status: &str, diagnostic: &str) -> String {
    Dsn {
        final_recipient: "jdoe@example.com",
        status,
        diagnostic: Some(diagnostic),
        ..Dsn::default()
    }
    .build()
}

#[test]
fn every_diagnostic_gives_its_verdict() {
    let mut wrong = Vec::new();
    for (status, diagnostic, hard, reason) in CASES {
        let v = classify(report(status, diagnostic).as_bytes());
        let got: Vec<(bool, Reason)> = v.recipients.iter().map(|r| (r.hard, r.reason)).collect();
        if got != [(*hard, *reason)] {
            wrong.push(format!(
                "{status} {diagnostic:?}: expected {:?}, got {got:?}",
                (hard, reason)
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn every_language_gives_its_verdict() {
    let mut wrong = Vec::new();
    for (lang, diagnostic, hard, reason) in LANGUAGES {
        let v = classify(report("5.0.0", &format!("550 {diagnostic}")).as_bytes());
        let got: Vec<(bool, Reason)> = v.recipients.iter().map(|r| (r.hard, r.reason)).collect();
        if got != [(*hard, *reason)] {
            wrong.push(format!(
                "{lang} {diagnostic:?}: expected {:?}, got {got:?}",
                (hard, reason)
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
