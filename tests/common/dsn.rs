//! Test messages: delivery status notifications shaped like those sendmail and Postfix send.

/// A delivery status notification like those sendmail and Postfix send: a human-readable
/// part, then `message/delivery-status` with one recipient.
pub struct Dsn<'a> {
    pub subject: &'a str,
    pub message_id: Option<&'a str>,
    pub x_failed_recipients: Option<&'a str>,
    pub final_recipient: &'a str,
    pub status: &'a str,
    /// The `Diagnostic-Code` (`smtp; ...`), when there is one.
    pub diagnostic: Option<&'a str>,
}

impl Default for Dsn<'_> {
    fn default() -> Self {
        Dsn {
            subject: "Returned mail: see transcript for details",
            message_id: Some("<202408291855.w7TItYs41@mta.invalid.local>"),
            x_failed_recipients: None,
            final_recipient: "bar@foo.com",
            status: "5.1.1",
            diagnostic: None,
        }
    }
}

impl Dsn<'_> {
    pub fn build(&self) -> String {
        let boundary = "b7TItYs4100793.1535568934/mta.invalid.local";
        let mut m = String::new();
        m.push_str("Received: from localhost (localhost)\r\n\tby mta.invalid.local; Thu, 29 Aug 2024 11:55:34 -0700\r\n");
        m.push_str("Date: Thu, 29 Aug 2024 11:55:34 -0700\r\n");
        m.push_str("From: Mail Delivery Subsystem <MAILER-DAEMON@mta.invalid.local>\r\n");
        if let Some(id) = self.message_id {
            m.push_str(&format!("Message-Id: {id}\r\n"));
        }
        m.push_str("To: <bn-1-12345@invalid.local>\r\nMIME-Version: 1.0\r\n");
        m.push_str(&format!(
            "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
        ));
        m.push_str(&format!("Subject: {}\r\n", self.subject));
        if let Some(x) = self.x_failed_recipients {
            m.push_str(&format!("X-Failed-Recipients: {x}\r\n"));
        }
        m.push_str("Auto-Submitted: auto-generated (failure)\r\n\r\n");
        m.push_str("This is a MIME-encapsulated message\r\n\r\n");
        m.push_str(&format!("--{boundary}\r\n\r\n"));
        m.push_str("The original message could not be delivered.\r\n\r\n");
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        ));
        m.push_str("Reporting-MTA: dns; mta.invalid.local\r\nArrival-Date: Thu, 29 Aug 2024 11:55:34 -0700\r\n\r\n");
        m.push_str(&format!(
            "Final-Recipient: RFC822; {}\r\nAction: failed\r\nStatus: {}\r\n",
            self.final_recipient, self.status
        ));
        m.push_str("Remote-MTA: DNS; mx.foo.com\r\n");
        if let Some(d) = self.diagnostic {
            m.push_str(&format!("Diagnostic-Code: smtp; {d}\r\n"));
        }
        m.push_str("\r\n");
        m.push_str(&format!("--{boundary}--\r\n"));
        m
    }
}
