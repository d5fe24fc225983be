//! The SMTP server run in the test process with the flows against the fake API, and a real
//! SMTP client (lettre) to send it one message.

use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use notify_inbound::config::TlsMode;
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;

use super::fake_api::{FakeApi, SettingsFor};

/// The server on a random loopback port for `domain`, with the flows pointed at `fake` and
/// no operations endpoint. `smtp_keys` go into `[inbound_smtp_server]`; `sections` are whole
/// sections of their own (`[api]`, `[bounce]`, ...).
pub async fn start_server(fake: &FakeApi, domain: &str, smtp_keys: &str, sections: &str) -> Server {
    let settings = fake.settings(&format!(
        "{sections}\n[inbound_smtp_server]\ndomain = '{domain}'\nlistening_ip = '127.0.0.1'\n\
         listening_smtp_port = 0\n{smtp_keys}\n[operations]\nlisten = ''\n"
    ));
    let processor = Arc::new(Processor::new(&settings).expect("processor"));
    Server::start(Arc::new(settings), processor, Arc::new(Metrics::new()))
        .await
        .expect("server")
}

/// One message from `from` (`None`: the null sender) to every address of `to`, in one
/// transaction, over plain SMTP.
pub async fn send(
    server: &Server,
    from: Option<&str>,
    to: &[&str],
    message: &str,
) -> Result<Response, SmtpError> {
    let port = server.addr(TlsMode::Starttls).unwrap().port();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::None)
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let to = to.iter().map(|a| a.parse().unwrap()).collect();
    let envelope = Envelope::new(from.map(|f| f.parse().unwrap()), to).unwrap();
    transport.send_raw(&envelope, message.as_bytes()).await
}

/// The reply code of a refused transaction, `""` when the server said none.
pub fn status(e: &SmtpError) -> String {
    e.status().map(|c| c.to_string()).unwrap_or_default()
}
