//! The wordings the classifier reads a reason from: one table for every reason and
//! language, so that a wording is added, reviewed and tested in one place. Each entry is a
//! pattern (matched ASCII case-insensitively, on bytes; non-ASCII text is matched as its
//! UTF-8 spelling, so a letter with a capital form is written with both) and an example
//! diagnostic it must give its reason for (`wordings_give_their_reason` below checks
//! every entry).
//!
//! Order matters: the first reason with a matching pattern wins. Wording that names the
//! address's own state (full, moved, disabled, unknown) comes before wording about the
//! sender or the message, and the loosest wordings ("address rejected") come last.
//! The non-English entries are the user-unknown, mailbox-full and unknown-domain wordings
//! of the large providers of each language; docs/classifier.md lists them.

use super::Reason;

/// One wording: what it means, its pattern, and an example diagnostic that says it.
pub(crate) struct Wording {
    pub reason: Reason,
    /// The language, `en` unless another (ISO 639-1).
    pub lang: &'static str,
    pub pattern: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub example: &'static str,
}

const fn w(reason: Reason, pattern: &'static str, example: &'static str) -> Wording {
    l(reason, "en", pattern, example)
}

const fn l(
    reason: Reason,
    lang: &'static str,
    pattern: &'static str,
    example: &'static str,
) -> Wording {
    Wording {
        reason,
        lang,
        pattern,
        example,
    }
}

/// Every wording, in the order they are tried.
pub(crate) const WORDINGS: &[Wording] = &[
    w(Reason::MailboxFull, r"mailbox (is )?full", "mailbox full"),
    w(
        Reason::MailboxFull,
        r"mail ?box[^.]*(full|quota)",
        "mailboxfull",
    ),
    w(Reason::MailboxFull, r"over ?quota", "overquota"),
    w(
        Reason::MailboxFull,
        r"quota (exceeded|full)",
        "quota exceeded",
    ),
    w(
        Reason::MailboxFull,
        r"exceeded (storage|(the )?quota|[^.]*storage allocation)",
        "exceeded storage",
    ),
    w(
        Reason::MailboxFull,
        r"(storage|disk) quota",
        "storage quota",
    ),
    w(
        Reason::MailboxFull,
        r"insufficient (storage|mailbox)",
        "insufficient storage",
    ),
    w(
        Reason::MailboxFull,
        r"mailfolder is full",
        "mailfolder is full",
    ),
    w(
        Reason::MailboxFull,
        r"user[^.]*(is )?over[^.]*(quota|limit)",
        "useroverquota",
    ),
    w(Reason::MailboxFull, r"too much mail", "too much mail"),
    w(Reason::MailboxFull, r"out of storage", "out of storage"),
    w(Reason::MailboxFull, r"account is full", "account is full"),
    w(Reason::MailboxFull, r"full mailbox", "full mailbox"),
    w(
        Reason::MailboxFull,
        r"(inbox|mailbox|mail box) (is )?(full|over (its )?(size )?limit)|mailbox (size )?limit exceeded|(has )?exceeded (his|her|their|its) (storage |mailbox )?(quota|limit)",
        "The recipient's inbox is full",
    ),
    w(
        Reason::MailboxFull,
        r"not enough (disk |storage )?space|(storage|space) (limit )?exceeded",
        "452 Not enough storage space for this user",
    ),
    // German (GMX, WEB.DE, T-Online, Freenet)
    l(
        Reason::MailboxFull,
        "de",
        r"postfach (des empf\S+ )?(ist )?(voll|überfüllt)",
        "Das Postfach ist voll",
    ),
    l(
        Reason::MailboxFull,
        "de",
        r"(speicherplatz|kontingent|quota) (ist )?(überschritten|erschöpft|voll)",
        "Quota überschritten",
    ),
    // French (Orange, Free, SFR, La Poste)
    l(
        Reason::MailboxFull,
        "fr",
        r"bo(i|î)te (aux lettres |mail |du destinataire |de réception )?(est )?pleine",
        "boîte aux lettres pleine",
    ),
    l(
        Reason::MailboxFull,
        "fr",
        r"quota (est )?(dépassé|atteint)|espace de stockage (insuffisant|plein)",
        "quota dépassé",
    ),
    // Spanish (Telefónica, Terra)
    l(
        Reason::MailboxFull,
        "es",
        r"buz(o|ó)n (de correo )?(est(a|á) )?(lleno|completo)",
        "buzón lleno",
    ),
    l(
        Reason::MailboxFull,
        "es",
        r"cuota (excedida|superada)|excede (la|su) cuota",
        "cuota excedida",
    ),
    // Portuguese (UOL, Terra, Sapo)
    l(
        Reason::MailboxFull,
        "pt",
        r"caixa (postal |de correio |de entrada )?(est(a|á) )?(cheia|lotada)",
        "caixa postal cheia",
    ),
    l(
        Reason::MailboxFull,
        "pt",
        r"(cota|quota) (excedida|esgotada)",
        "cota excedida",
    ),
    // Italian (Libero, Virgilio, Tiscali, Aruba)
    l(
        Reason::MailboxFull,
        "it",
        r"casella (di posta |postale )?(del destinatario )?(è |e' )?(piena|satura)",
        "casella di posta piena",
    ),
    l(
        Reason::MailboxFull,
        "it",
        r"(spazio|quota) (esaurit[oa]|superat[oa])",
        "spazio esaurito",
    ),
    // Dutch (KPN, Ziggo)
    l(
        Reason::MailboxFull,
        "nl",
        r"(mailbox|postvak|brievenbus) (van de ontvanger )?(is )?vol\b",
        "postvak is vol",
    ),
    l(
        Reason::MailboxFull,
        "nl",
        r"quotum (is )?overschreden",
        "quotum overschreden",
    ),
    // Polish (WP, Onet, Interia)
    l(
        Reason::MailboxFull,
        "pl",
        r"skrzynka (odbiorcy )?(jest )?(pełna|przepełniona)|przepełniona skrzynka",
        "skrzynka odbiorcy jest pełna",
    ),
    l(
        Reason::MailboxFull,
        "pl",
        r"przekroczon[yao] (limit|quota|pojemność)",
        "przekroczony limit",
    ),
    // Russian (Mail.ru, Yandex, Rambler)
    l(
        Reason::MailboxFull,
        "ru",
        r"ящик ((П|п)олучателя )?(переполнен|заполнен)",
        "Почтовый ящик переполнен",
    ),
    l(
        Reason::MailboxFull,
        "ru",
        r"((П|п)ревышена|(П|п)ревышен) (квота|лимит|размер ящика)|(К|к)вота превышена",
        "превышена квота",
    ),
    // Japanese (Docomo, au, SoftBank, Biglobe, Nifty)
    l(
        Reason::MailboxFull,
        "ja",
        r"(メールボックス|メール ?ボックス|受信箱)(の容量)?(が|は)?(いっぱい|一杯|満杯)|容量(オーバー|超過|が不足)",
        "メールボックスがいっぱいです",
    ),
    // Chinese (QQ, NetEase 163/126, Sina, Aliyun)
    l(
        Reason::MailboxFull,
        "zh",
        r"(邮箱|信箱|郵箱)(空间|容量)?(已满|已滿|不足)|(空间|容量)(已满|不足)|超出(邮箱)?容量",
        "收件人邮箱空间已满",
    ),
    // Korean (Naver, Daum/Kakao, Nate)
    l(
        Reason::MailboxFull,
        "ko",
        r"(메일함|편지함|사서함)(의)? ?(용량)?(이|가)? ?(가득|꽉|초과|부족)",
        "메일함 용량이 초과되었습니다",
    ),
    w(
        Reason::MesgTooBig,
        r"message (size )?(exceeds|is too (big|large)|too (big|large))",
        "message exceeds",
    ),
    w(
        Reason::MesgTooBig,
        r"(size|length) (exceeds|limit)",
        "size exceeds",
    ),
    w(Reason::MesgTooBig, r"too large", "too large"),
    w(
        Reason::MesgTooBig,
        r"exceeds (the )?(maximum )?(message )?size",
        "exceeds size",
    ),
    w(
        Reason::MesgTooBig,
        r"message size [^.]*(exceed|limit)",
        "message size exceed",
    ),
    w(Reason::MesgTooBig, r"mail size", "mail size"),
    w(
        Reason::NotAccept,
        r"(host|domain)( or domain| name)?(/(host|domain))? does not accept (any )?mail",
        "host does not accept mail",
    ),
    w(Reason::NotAccept, r"null mx", "null mx"),
    w(Reason::NotAccept, r"accepts no mail", "accepts no mail"),
    w(
        Reason::NotAccept,
        r"indicated no smtp service",
        "indicated no smtp service",
    ),
    w(
        Reason::NotAccept,
        r"not accepting (network )?messages",
        "not accepting messages",
    ),
    w(
        Reason::NotAccept,
        r"couldn't find a mail exchanger",
        "couldn't find a mail exchanger",
    ),
    w(Reason::NotAccept, r"no mx (record )?found", "no mx found"),
    w(
        Reason::NotAccept,
        r"does not accept e-?mail for this domain",
        "does not accept email for this domain",
    ),
    w(
        Reason::Rejected,
        r"sender address rejected",
        "sender address rejected",
    ),
    w(Reason::Rejected, r"sender rejected", "sender rejected"),
    w(Reason::Rejected, r"domain of sender", "domain of sender"),
    w(
        Reason::Rejected,
        r"sender verif(y|ication) failed",
        "sender verify failed",
    ),
    w(Reason::Rejected, r"unroutable sender", "unroutable sender"),
    w(
        Reason::Rejected,
        r"sender (domain|address) (is )?(invalid|unknown|does not exist|not allowed|rejected|denied)",
        "sender domain invalid",
    ),
    w(Reason::Rejected, r"envelope sender", "envelope sender"),
    w(Reason::Rejected, r"invalid sender", "invalid sender"),
    w(Reason::Rejected, r"valid from", "valid from"),
    w(Reason::Rejected, r"from address", "from address"),
    w(
        Reason::Rejected,
        r"sender[^.]*(does not|doesn't) exist",
        "senderdoes not exist",
    ),
    w(Reason::Rejected, r"bad sender", "bad sender"),
    w(
        Reason::Filtered,
        r"recipient preferences",
        "recipient preferences",
    ),
    w(
        Reason::Filtered,
        r"refused due to recipient",
        "refused due to recipient",
    ),
    w(Reason::Filtered, r"badrcptto", "badrcptto"),
    w(
        Reason::Filtered,
        r"recipient has (rejected|refused)",
        "recipient has rejected",
    ),
    w(
        Reason::Filtered,
        r"refused by (the )?recipient",
        "refused by recipient",
    ),
    w(
        Reason::NetworkError,
        r"host not found, try again",
        "host not found, try again",
    ),
    w(
        Reason::NetworkError,
        r"temporary (dns|lookup) failure",
        "temporary dns failure",
    ),
    w(Reason::HasMoved, r"has (been )?moved", "has moved"),
    w(
        Reason::HasMoved,
        r"address (has )?changed",
        "address changed",
    ),
    w(
        Reason::HasMoved,
        r"no longer (at|with) this",
        "no longer at this",
    ),
    w(Reason::HasMoved, r"moved to", "moved to"),
    w(
        Reason::Suspend,
        r"(mailbox|account|user|address|recipient)( has been| is)? (temporarily )?(disabled|suspended|deactivated|inactive|locked|frozen|not active|on hold|blocked by the administrator)",
        "mailbox disabled",
    ),
    w(
        Reason::Suspend,
        r"is (inactive|disabled|suspended)",
        "is inactive",
    ),
    w(
        Reason::Suspend,
        r"suspended (account|mailbox)",
        "suspended account",
    ),
    w(
        Reason::Suspend,
        r"account[^.]*(expired|closed)",
        "accountexpired",
    ),
    w(
        Reason::Suspend,
        r"inactive (account|user|mailbox)",
        "inactive account",
    ),
    w(
        Reason::Suspend,
        r"disabled (recipient|mailbox|account|user)",
        "disabled recipient",
    ),
    w(Reason::Suspend, r"temporar\w* locked", "temporar locked"),
    w(Reason::Suspend, r"account[^.]*locked", "accountlocked"),
    w(
        Reason::HostUnknown,
        r"host (or domain name )?(not found|unknown)",
        "host not found",
    ),
    w(
        Reason::HostUnknown,
        r"host [a-z0-9.-]+ not found",
        "host a not found",
    ),
    w(Reason::HostUnknown, r"invalid domain", "invalid domain"),
    w(
        Reason::HostUnknown,
        r"domain may not exist",
        "domain may not exist",
    ),
    w(
        Reason::HostUnknown,
        r"domain is not reachable",
        "domain is not reachable",
    ),
    w(Reason::HostUnknown, r"unknown host", "unknown host"),
    w(
        Reason::HostUnknown,
        r"(domain|host) name (not found|lookup failed)",
        "domain name not found",
    ),
    w(
        Reason::HostUnknown,
        r"domain (does not exist|not found|unknown)",
        "domain does not exist",
    ),
    w(Reason::HostUnknown, r"no such domain", "no such domain"),
    w(Reason::HostUnknown, r"(^|\W)nxdomain", "nxdomain"),
    w(Reason::HostUnknown, r"unrouteable", "unrouteable"),
    w(
        Reason::HostUnknown,
        r"name or service not known",
        "name or service not known",
    ),
    w(
        Reason::HostUnknown,
        r"no (mx|mail exchanger|dns) ",
        "no mx records",
    ),
    w(
        Reason::HostUnknown,
        r"mx (record )?not found",
        "mx not found",
    ),
    w(Reason::HostUnknown, r"unknown domain", "unknown domain"),
    w(
        Reason::HostUnknown,
        r"domain[^.]*(does not|doesn't) exist",
        "domaindoes not exist",
    ),
    w(Reason::HostUnknown, r"illegal host", "illegal host"),
    w(
        Reason::HostUnknown,
        r"host does not exist",
        "host does not exist",
    ),
    w(
        Reason::HostUnknown,
        r"no route to domain",
        "no route to domain",
    ),
    w(Reason::HostUnknown, r"no valid (mx|host)", "no valid mx"),
    w(
        Reason::HostUnknown,
        r"bad destination (system|host)",
        "bad destination system",
    ),
    l(
        Reason::HostUnknown,
        "de",
        r"domain (existiert nicht|nicht gefunden|unbekannt)|unbekannte domain",
        "Domain existiert nicht",
    ),
    l(
        Reason::HostUnknown,
        "fr",
        r"domaine (inconnu|inexistant)|le domaine n'existe pas",
        "domaine inexistant",
    ),
    l(
        Reason::HostUnknown,
        "es",
        r"dominio (inexistente|desconocido|sconosciuto)",
        "dominio inexistente",
    ),
    l(
        Reason::HostUnknown,
        "ru",
        r"(Д|д)омен не (существует|найден)",
        "домен не существует",
    ),
    l(
        Reason::HostUnknown,
        "ja",
        r"ドメイン(が|は)(存在しません|見つかりません)",
        "ドメインが存在しません",
    ),
    l(Reason::HostUnknown, "zh", r"域名不存在", "收件人域名不存在"),
    w(Reason::UserUnknown, r"user( is)? unknown", "user unknown"),
    w(
        Reason::UserUnknown,
        r"unknown (user|recipient|local.?part|address|mailbox|alias)",
        "unknown user",
    ),
    w(
        Reason::UserUnknown,
        r"no such (user|mailbox|recipient|address|account|person|local user|email)",
        "no such user",
    ),
    w(
        Reason::UserUnknown,
        r"(user|mailbox|recipient|address|account|e-?mail|alias|addressee)( address)?( name)? (does not|doesn't|did not) exist",
        "user does not exist",
    ),
    w(
        Reason::UserUnknown,
        r"(user|mailbox|recipient|address|account|addressee)( address)? (not found|unknown|is unknown|not known|invalid|unavailable)",
        "user not found",
    ),
    w(
        Reason::UserUnknown,
        r"invalid (recipient|mailbox|address|user|destination)",
        "invalid recipient",
    ),
    w(
        Reason::UserUnknown,
        r"not a valid (mailbox|user|recipient|address)",
        "not a valid mailbox",
    ),
    w(
        Reason::UserUnknown,
        r"bad destination mailbox",
        "bad destination mailbox",
    ),
    w(
        Reason::UserUnknown,
        r"(recipient|mailbox|user|address) is not valid",
        "recipient is not valid",
    ),
    w(
        Reason::UserUnknown,
        r"recipient address rejected: access denied",
        "recipient address rejected: access denied",
    ),
    w(
        Reason::UserUnknown,
        r"(is not|isn't) a (known|valid) (user|recipient|mailbox)",
        "is not a known user",
    ),
    w(
        Reason::UserUnknown,
        r"(does not|doesn't) have an? \S+ account",
        "does not have a example.org account",
    ),
    w(
        Reason::UserUnknown,
        r"recipient name is not recognized",
        "recipient name is not recognized",
    ),
    w(
        Reason::UserUnknown,
        r"invalid [^.]*userid",
        "invalid userid",
    ),
    w(
        Reason::UserUnknown,
        r"unknown or illegal alias",
        "unknown or illegal alias",
    ),
    w(
        Reason::UserUnknown,
        r"undeliverable address",
        "undeliverable address",
    ),
    w(
        Reason::UserUnknown,
        r"no mailbox (here|by that name)",
        "no mailbox here",
    ),
    w(
        Reason::UserUnknown,
        r"mailbox unavailable",
        "mailbox unavailable",
    ),
    w(
        Reason::UserUnknown,
        r"account (that you tried to reach )?does not exist",
        "account does not exist",
    ),
    w(Reason::UserUnknown, r"does not exist", "does not exist"),
    w(
        Reason::UserUnknown,
        r"not our customer|addressee unknown|no such address|unknown local part|unable to find (the )?recipient|user account (is )?unavailable",
        "550 Addressee unknown",
    ),
    w(
        Reason::UserUnknown,
        r"(e-?mail )?address (is )?no longer (valid|in use|active)",
        "This email address is no longer valid",
    ),
    w(
        Reason::UserUnknown,
        r"not listed in [^.]*directory",
        "not listed in directory",
    ),
    w(Reason::UserUnknown, r"no account", "no account"),
    w(
        Reason::UserUnknown,
        r"(user|recipient) not (found|local)",
        "user not found",
    ),
    w(
        Reason::UserUnknown,
        r"unknown in (virtual|local|relay)",
        "unknown in virtual",
    ),
    w(
        Reason::UserUnknown,
        r"address lookup failed",
        "address lookup failed",
    ),
    w(
        Reason::UserUnknown,
        r"no valid recipients",
        "no valid recipients",
    ),
    w(Reason::UserUnknown, r"invalid mailbox", "invalid mailbox"),
    w(Reason::UserUnknown, r"was not found", "was not found"),
    w(Reason::UserUnknown, r"dosya bulunamadi", "dosya bulunamadi"),
    w(
        Reason::UserUnknown,
        r"mailbox not found",
        "mailbox not found",
    ),
    // Lotus Domino (English and Japanese)
    l(
        Reason::UserUnknown,
        "ja",
        r"not listed in public name (&|and) address book|domino ディレクトリには見つかりません",
        "User x not listed in public Name & Address Book",
    ),
    // German (GMX, WEB.DE, T-Online, Freenet)
    l(
        Reason::UserUnknown,
        "de",
        r"(benutzer|empfänger|adresse|mailbox|postfach|e-mail-adresse)( ist)? (unbekannt|existiert nicht|nicht vorhanden|nicht gefunden|ungültig)",
        "Empfänger unbekannt",
    ),
    l(
        Reason::UserUnknown,
        "de",
        r"unbekannter? (benutzer|empfänger)|ungültige (empfänger)?adresse|kein postfach",
        "unbekannter Empfänger",
    ),
    // French (Orange, Free, SFR, La Poste)
    l(
        Reason::UserUnknown,
        "fr",
        r"(utilisateur|destinataire|adresse|compte|bo(i|î)te aux lettres)( e-?mail)? (inconnue?|inexistante?|introuvable|invalide)",
        "destinataire inconnu",
    ),
    l(
        Reason::UserUnknown,
        "fr",
        r"(adresse|compte|utilisateur|destinataire)[^.]* n'existe pas",
        "cette adresse n'existe pas",
    ),
    // Spanish (Telefónica, Terra, Prodigy)
    l(
        Reason::UserUnknown,
        "es",
        r"(usuario|destinatario|buz(o|ó)n|cuenta|direcci(o|ó)n)( de correo)? (desconocid[oa]|inexistente|no existe|no encontrad[oa]|no v(a|á)lid[oa])",
        "usuario desconocido",
    ),
    l(
        Reason::UserUnknown,
        "es",
        r"no existe (el|la|ese|esa) (usuario|cuenta|buz(o|ó)n|direcci(o|ó)n)",
        "no existe el usuario",
    ),
    // Portuguese (UOL, Terra, Sapo, BOL)
    l(
        Reason::UserUnknown,
        "pt",
        r"(usu(a|á)rio|utilizador|destinat(a|á)rio|conta|endere(c|ç)o|caixa postal)( de e-?mail)? (desconhecid[oa]|inexistente|n(a|ã)o existe|n(a|ã)o encontrad[oa]|inv(a|á)lid[oa])",
        "usuário desconhecido",
    ),
    // Italian (Libero, Virgilio, Tiscali, Aruba)
    l(
        Reason::UserUnknown,
        "it",
        r"(utente|destinatario|indirizzo|casella)( di posta| email| e-mail)? (sconosciut[oa]|inesistente|non esiste|non trovat[oa]|non valid[oa])",
        "utente sconosciuto",
    ),
    // Dutch (KPN, Ziggo, XS4ALL)
    l(
        Reason::UserUnknown,
        "nl",
        r"(gebruiker|ontvanger|adres|mailbox|postvak)( is)? (onbekend|bestaat niet|niet gevonden)|onbekende (gebruiker|ontvanger)",
        "onbekende gebruiker",
    ),
    // Polish (WP, Onet, Interia)
    l(
        Reason::UserUnknown,
        "pl",
        r"(użytkownik|konto|adres|skrzynka|odbiorca)( odbiorcy)? (nie istnieje|nieznany|nie został znaleziony)|nieznany (użytkownik|odbiorca|adres)|nie ma takiego (użytkownika|konta|adresu)",
        "użytkownik nie istnieje",
    ),
    // Russian (Mail.ru, Yandex, Rambler)
    l(
        Reason::UserUnknown,
        "ru",
        r"((П|п)ользовател(ь|я)|(П|п)олучател(ь|я)|(А|а)дрес(а)?|(Я|я)щик(а)?|(А|а)ккаунт(а)?|(У|у)четн\S* запис\S*)( \S+)? (не существует|не найден(а)?|неизвест\S*)|(Н|н)ет такого ((П|п)ользователя|ящика|адреса)|(Т|т)акого (ящика|(П|п)ользователя) нет|(Н|н)еизвестный ((П|п)ользователь|адрес|(П|п)олучатель)",
        "Пользователь не найден",
    ),
    // Japanese (Docomo, au, SoftBank, Biglobe, Nifty)
    l(
        Reason::UserUnknown,
        "ja",
        r"(宛先|あて先|メールアドレス|アドレス|ユーザー?|受信者|アカウント)(が|は)?(存在しません|見つかりません|不明)|存在しない(メールアドレス|アドレス|ユーザー?)|宛先不明",
        "このメールアドレスは存在しません",
    ),
    // Chinese (QQ, NetEase 163/126, Sina, Aliyun)
    l(
        Reason::UserUnknown,
        "zh",
        r"(用户|用戶|收件人|收件者|邮箱|郵箱|信箱|帐号|账号|帳號|账户|地址|使用者)(名)?(不存在|无效|無效)|查无此(用户|人)|无此用户",
        "收件人不存在",
    ),
    // Korean (Naver, Daum/Kakao, Nate)
    l(
        Reason::UserUnknown,
        "ko",
        r"존재하지 않는 (계정|사용자|아이디|주소|메일|수신자)|(사용자|수신자|계정|받는 사람)(를|을|이|가)? ?(찾을 수 없|존재하지 않)|없는 (사용자|계정|메일 ?주소|아이디)",
        "존재하지 않는 계정입니다",
    ),
    w(Reason::AuthFailure, r"\b(spf|dkim|dmarc)\b", "spf"),
    w(
        Reason::AuthFailure,
        r"sender policy framework",
        "sender policy framework",
    ),
    w(
        Reason::AuthFailure,
        r"authentication (checks? )?(failed|required)",
        "authentication failed",
    ),
    w(
        Reason::AuthFailure,
        r"not authenticated",
        "not authenticated",
    ),
    w(Reason::Blocked, r"block ?list", "blocklist"),
    w(Reason::Blocked, r"black ?list", "blacklist"),
    w(Reason::Blocked, r"blocked", "blocked"),
    w(
        Reason::Blocked,
        r"(^|\W)(rbl|dnsbl|spamhaus|spamcop|barracuda)",
        "rbl",
    ),
    w(Reason::Blocked, r"reputation", "reputation"),
    w(Reason::Blocked, r"reverse dns", "reverse dns"),
    w(Reason::Blocked, r"ptr record", "ptr record"),
    w(Reason::Blocked, r"(client|your) (host|ip)", "client host"),
    w(
        Reason::Blocked,
        r"not allowed to send",
        "not allowed to send",
    ),
    w(Reason::Blocked, r"access denied", "access denied"),
    w(Reason::Blocked, r"connection refused", "connection refused"),
    w(Reason::Blocked, r"refused to talk", "refused to talk"),
    w(Reason::Blocked, r"banned", "banned"),
    w(Reason::Blocked, r"listed (at|on|in)", "listed at"),
    w(
        Reason::Blocked,
        r"deny(ing)? (connection|access)",
        "deny connection",
    ),
    w(Reason::Blocked, r"poor [^.]*reputation", "poor reputation"),
    w(Reason::Blocked, r"rejected[^.]*(ip|host)", "rejectedip"),
    w(Reason::SpamDetected, r"spam", "spam"),
    w(Reason::SpamDetected, r"junk", "junk"),
    w(Reason::SpamDetected, r"bulk mail", "bulk mail"),
    w(
        Reason::SpamDetected,
        r"content (rejected|filter)",
        "content rejected",
    ),
    w(Reason::SpamDetected, r"message content", "message content"),
    w(Reason::SpamDetected, r"unsolicited", "unsolicited"),
    w(Reason::SpamDetected, r"virus", "virus"),
    w(Reason::SpamDetected, r"malware", "malware"),
    w(Reason::SpamDetected, r"suspicious", "suspicious"),
    w(Reason::SpamDetected, r"phishing", "phishing"),
    w(Reason::Filtered, r"filter", "filter"),
    w(
        Reason::Filtered,
        r"refused by (the )?recipient",
        "refused by recipient",
    ),
    w(
        Reason::Filtered,
        r"does not accept (mail|e-?mail|messages)",
        "does not accept mail",
    ),
    w(
        Reason::Filtered,
        r"not accept(ing)? (mail|e-?mail|messages)",
        "not accept mail",
    ),
    w(Reason::Filtered, r"rule", "rule"),
    w(
        Reason::Filtered,
        r"(recipient|user) (has )?(rejected|refused)",
        "recipient rejected",
    ),
    w(
        Reason::Filtered,
        r"not authori[sz]ed to (receive|send)",
        "not authorised to receive",
    ),
    w(Reason::Filtered, r"restricted", "restricted"),
    w(Reason::Filtered, r"only accepts", "only accepts"),
    w(
        Reason::Expired,
        r"retry time(out)? (not reached|exceeded)",
        "retry time not reached",
    ),
    w(
        Reason::Expired,
        r"too long in (the )?queue",
        "too long in queue",
    ),
    w(
        Reason::Expired,
        r"(message |delivery (time |period )?)?expired",
        "expired",
    ),
    w(Reason::Expired, r"gave up", "gave up"),
    w(Reason::Expired, r"giving up", "giving up"),
    w(
        Reason::Expired,
        r"could not be delivered (within|for)",
        "could not be delivered within",
    ),
    w(Reason::Expired, r"delivery time", "delivery time"),
    w(Reason::Expired, r"undeliverable for", "undeliverable for"),
    w(Reason::Expired, r"time limit", "time limit"),
    w(
        Reason::Expired,
        r"no (response|answer) [^.]*(for|after)",
        "no response for",
    ),
    w(
        Reason::Expired,
        r"has not been delivered",
        "has not been delivered",
    ),
    w(
        Reason::Expired,
        r"not (yet )?been delivered",
        "not been delivered",
    ),
    w(
        Reason::Expired,
        r"delivery attempts? (will continue|failed for)",
        "delivery attempt will continue",
    ),
    w(Reason::Expired, r"timeout", "timeout"),
    w(Reason::Expired, r"timed out", "timed out"),
    w(
        Reason::TooManyConn,
        r"too many (connections|messages|recipients|sessions|concurrent)",
        "too many connections",
    ),
    w(Reason::TooManyConn, r"rate limit", "rate limit"),
    w(Reason::TooManyConn, r"throttl", "throttl"),
    w(Reason::TooManyConn, r"try (again )?later", "try later"),
    w(
        Reason::TooManyConn,
        r"temporarily deferred",
        "temporarily deferred",
    ),
    w(Reason::PolicyViolation, r"policy", "policy"),
    w(Reason::PolicyViolation, r"not permitted", "not permitted"),
    w(Reason::PolicyViolation, r"prohibited", "prohibited"),
    w(Reason::PolicyViolation, r"not allowed", "not allowed"),
    w(
        Reason::PolicyViolation,
        r"relay(ing)? (denied|not permitted|access denied)",
        "relay denied",
    ),
    w(Reason::NetworkError, r"mail loop", "mail loop"),
    w(Reason::NetworkError, r"loops back", "loops back"),
    w(Reason::NetworkError, r"too many hops", "too many hops"),
    w(Reason::NetworkError, r"hop count", "hop count"),
    w(Reason::NetworkError, r"network", "network"),
    w(
        Reason::NetworkError,
        r"connection (lost|reset|timed out)",
        "connection lost",
    ),
    w(Reason::NetworkError, r"no route", "no route"),
    w(
        Reason::NetworkError,
        r"could not connect",
        "could not connect",
    ),
    w(
        Reason::NetworkError,
        r"unable to connect",
        "unable to connect",
    ),
    w(Reason::NetworkError, r"lost connection", "lost connection"),
    w(Reason::NetworkError, r"dns (error|failure)", "dns error"),
    w(
        Reason::NetworkError,
        r"temporary (lookup )?failure",
        "temporary failure",
    ),
    w(
        Reason::SystemError,
        r"system (error|failure|config)",
        "system error",
    ),
    w(
        Reason::SystemError,
        r"internal (server )?error",
        "internal error",
    ),
    w(
        Reason::SystemError,
        r"configuration error",
        "configuration error",
    ),
    w(Reason::SystemError, r"local error", "local error"),
    w(Reason::SystemError, r"server error", "server error"),
    w(Reason::SystemError, r"disk (full|space)", "disk full"),
    w(
        Reason::SystemError,
        r"insufficient system storage",
        "insufficient system storage",
    ),
    w(Reason::SystemError, r"out of memory", "out of memory"),
    w(Reason::SystemError, r"i/o error", "i/o error"),
    w(
        Reason::SystemError,
        r"service (not available|unavailable)",
        "service not available",
    ),
    w(
        Reason::SystemError,
        r"resources? (temporarily )?unavailable",
        "resource unavailable",
    ),
    // Greylisting is a temporary refusal, however "rejected" it is worded.
    w(
        Reason::TooManyConn,
        r"grey ?listed|gr[ae]ylisting",
        "Recipient address rejected: Greylisted, try again",
    ),
];

/// "User unknown" wordings so plain that no SMTP context is needed to believe them: a
/// content filter that disguises a refusal says "user unknown", never these. They win over
/// a `5.7.x` status and over a refusal after `DATA`. Each must also be read as user
/// unknown by [`WORDINGS`].
pub(crate) const PLAINLY_UNKNOWN: &[Wording] = &[
    w(
        Reason::UserUnknown,
        r"not listed in public name (&|and) address book",
        "User not listed in public Name & Address Book",
    ),
    w(
        Reason::UserUnknown,
        r"recipient ?not ?found",
        "550 5.1.1 Recipient not found",
    ),
    w(
        Reason::UserUnknown,
        r"mailbox unavailable",
        "550 Requested action not taken: mailbox unavailable",
    ),
    w(
        Reason::UserUnknown,
        r"not listed in [^.]*directory",
        "User Neko (neko@example.org) not listed in Domino Directory",
    ),
    w(
        Reason::UserUnknown,
        r"recipient name is not recognized",
        "The recipient name is not recognized",
    ),
    w(
        Reason::UserUnknown,
        r"invalid final delivery",
        "550 Invalid final delivery userid",
    ),
    w(
        Reason::UserUnknown,
        r"invalid recipient",
        "550 Invalid recipient <neko@example.org>",
    ),
    w(
        Reason::UserUnknown,
        r"address (couldn't|could not) be found",
        "The email address couldn't be found, the mailbox unavailable",
    ),
    w(
        Reason::UserUnknown,
        r"address not found",
        "Address not found: the address does not exist",
    ),
    w(
        Reason::UserUnknown,
        r"unknown user:",
        "Unknown user: neko@example.org",
    ),
    w(
        Reason::UserUnknown,
        r"no mailbox",
        "Sorry, no mailbox here by that name. (#5.1.1)",
    ),
    w(
        Reason::UserUnknown,
        r"unknown recipient",
        "550 Unknown recipient",
    ),
    w(
        Reason::UserUnknown,
        r"recipient address rejected: access denied",
        "550 5.4.1 Recipient address rejected: Access denied",
    ),
    w(
        Reason::UserUnknown,
        r"invalid user address",
        "Error: Invalid user address",
    ),
    w(
        Reason::UserUnknown,
        r"user not found",
        "550 5.0.0 User not found",
    ),
    w(
        Reason::UserUnknown,
        r"user unknown in [a-z ]*table",
        "Recipient address rejected: User unknown in local recipient table",
    ),
    w(
        Reason::UserUnknown,
        r"(mailbox|address|user|recipient) (does not|doesn't) exist",
        "550 The mailbox does not exist",
    ),
];

#[cfg(test)]
mod tests {
    use super::super::reason::{decide, from_text};
    use super::*;

    /// Each wording, in a small synthetic diagnostic, gives its reason.
    #[test]
    fn wordings_give_their_reason() {
        let mut wrong = Vec::new();
        for (i, e) in WORDINGS.iter().enumerate() {
            let diagnostic = format!("smtp; 550 <neko@example.org>... {}", e.example);
            if from_text(&diagnostic) != Some(e.reason) {
                wrong.push(format!(
                    "entry {i} ({:?}, {}): {:?} gives {:?}",
                    e.reason,
                    e.pattern,
                    e.example,
                    from_text(&diagnostic)
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Each plain wording (and every user-unknown wording in another language) is read as
    /// user unknown under a generic status and under a 5.7.1 one — except "access denied",
    /// which a 5.7.x status makes the policy refusal it says.
    #[test]
    fn plain_wordings_beat_a_generic_or_policy_status() {
        let other_languages = WORDINGS
            .iter()
            .filter(|e| e.reason == Reason::UserUnknown && e.lang != "en");
        for e in PLAINLY_UNKNOWN.iter().chain(other_languages) {
            for status in ["5.0.0", "5.0.910", "", "5.7.1"] {
                if status == "5.7.1" && e.pattern.contains("access denied") {
                    continue;
                }
                let diagnostic = format!("smtp; 550 {status} {}", e.example);
                assert_eq!(
                    decide(status, &diagnostic, None),
                    Reason::UserUnknown,
                    "{status} {}",
                    e.pattern
                );
            }
        }
    }

    /// Every pattern compiles on its own, so a broken entry names itself.
    #[test]
    fn every_pattern_compiles() {
        for e in WORDINGS.iter().chain(PLAINLY_UNKNOWN) {
            assert!(
                regex::bytes::Regex::new(&super::super::reason::byte_pattern(e.pattern)).is_ok(),
                "{}",
                e.pattern
            );
        }
    }
}
