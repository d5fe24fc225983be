//! Both flows working in a minute, with no NotifyBC: the server on a free loopback port,
//! wired to the in-process fake NotifyBC API (`crates/fake-notifybc`) holding three confirmed
//! subscriptions, and ready-to-paste `swaks` lines that unsubscribe one subscriber and record
//! a hard bounce for another.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! The fake's records are printed as they change; Ctrl-C stops the demo.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fake_notifybc::FakeApi;
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;

/// The domain of the `un-`/`bn-` addresses in the demo.
pub const DOMAIN: &str = "localhost";

/// The running demo: dropping it stops the fake API; [`Demo::stop`] stops the server too.
pub struct Demo {
    pub fake: FakeApi,
    pub server: Server,
    /// What the demo prints: an introduction and the `swaks` lines.
    pub instructions: String,
    /// The DSN the bounce line sends (`--data @{dsn}`).
    pub dsn: PathBuf,
}

impl Demo {
    /// Starts the fake API and the server, and writes the demo's DSN into `dir`.
    pub async fn start(dir: &Path) -> Result<Demo, String> {
        let fake = FakeApi::start().await;
        let un_id = fake.add_subscription("newsletter", "alice@example.com", "12345");
        let bn_id = fake.add_subscription("newsletter", "bob@example.com", "67890");
        fake.add_subscription("alerts", "carol@example.com", "24680");

        let settings = Settings::from_toml_str(&fake.config_toml(&format!(
            "[inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\n\
             listening_smtp_port = 0\n[operations]\nlisten = ''\n"
        )))
        .map_err(|e| format!("demo configuration: {e}"))?;
        let processor =
            Arc::new(Processor::new(&settings).map_err(|e| format!("demo API client: {e}"))?);
        let server = Server::start(Arc::new(settings), processor, Arc::new(Metrics::new()))
            .await
            .map_err(|e| format!("demo server: {e}"))?;
        let port = server
            .addr(TlsMode::Starttls)
            .ok_or("the demo server has no STARTTLS listener")?
            .port();

        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let dsn = dir.join("dsn.eml");
        std::fs::write(&dsn, dsn_for("bob@example.com", &bn_id))
            .map_err(|e| format!("{}: {e}", dsn.display()))?;

        let server_arg = format!("127.0.0.1:{port}");
        let instructions = format!(
            "notify-inbound is listening on {server_arg} for the domain {DOMAIN}, calling a fake \
             NotifyBC API at {api}/api\n\
             with three confirmed subscriptions: 1 alice@example.com (code 12345), \
             2 bob@example.com (code 67890), 3 carol@example.com (code 24680).\n\
             \n\
             Unsubscribe alice (expect 250 2.0.0 unsubscribed):\n\
             \n\
             swaks --server {server_arg} --from alice@example.com --to un-{un_id}-12345@{DOMAIN} \
             --header 'Subject: unsubscribe' --body 'unsubscribe'\n\
             \n\
             Record a hard bounce for bob (expect 250 2.0.0 bounce accepted, the same reply for \
             every accepted bounce):\n\
             \n\
             swaks --server {server_arg} --from '<>' --to bn-{bn_id}-67890@{DOMAIN} --data @{dsn}\n\
             \n\
             A wrong code is refused (expect 550 5.7.1):\n\
             \n\
             swaks --server {server_arg} --from carol@example.com --to un-3-00000@{DOMAIN} \
             --header 'Subject: unsubscribe' --body 'unsubscribe'\n",
            api = fake.host_url(),
            dsn = dsn.display(),
        );
        Ok(Demo {
            fake,
            server,
            instructions,
            dsn,
        })
    }

    /// One line per subscription and bounce record, as the fake API holds them now.
    pub fn records(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .fake
            .subscriptions()
            .iter()
            .map(|s| format!("subscription {} {} {}", s.id, s.user_channel_id, s.state))
            .collect();
        lines.extend(self.fake.bounces().iter().map(|b| {
            format!(
                "bounce record {} {} {} hardBounceCount={}",
                b.id, b.user_channel_id, b.state, b.hard_bounce_count
            )
        }));
        lines
    }

    pub async fn stop(self) {
        self.server.shutdown(Duration::from_secs(1)).await;
    }
}

/// A multipart/report DSN saying `recipient` does not exist (5.1.1), sent back to the VERP
/// sender of subscription `id`.
fn dsn_for(recipient: &str, id: &str) -> String {
    format!(
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example>\r\n\
         To: bn-{id}-67890@{DOMAIN}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         \r\n\
         The mail to {recipient} could not be delivered.\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\
         \r\n\
         --b1--\r\n"
    )
}

#[allow(dead_code)]
#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("notify-inbound-demo-{}", std::process::id()));
    let demo = match Demo::start(&dir).await {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", demo.instructions);
    let mut shown = demo.records();
    println!("The fake NotifyBC API holds:");
    for line in &shown {
        println!("  {line}");
    }
    println!("\nChanges are printed below as they happen; Ctrl-C stops the demo.");
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let now = demo.records();
                for line in now.iter().filter(|l| !shown.contains(l)) {
                    println!("  now: {line}");
                }
                shown = now;
            }
        }
    }
    demo.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
