//! Both transports serve the same rules: the same calls, seeded the same way, get the same
//! answers and leave the same records, over real HTTP on loopback.

use std::net::SocketAddr;

use fake_notifybc::fast::FastApi;
use fake_notifybc::state::ApiState;
use fake_notifybc::{CallCounts, FakeApi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Status, `Location` and body of one call made on a connection of its own.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

async fn call(addr: SocketAddr, method: &str, target: &str, anonymous: bool, body: &str) -> Answer {
    let mut tcp = TcpStream::connect(addr).await.expect("connect to the fake");
    let anonymous = if anonymous {
        "is_anonymous: true\r\n"
    } else {
        ""
    };
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n{anonymous}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read the answer");
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let location = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("location")
            .then(|| value.trim().to_string())
    });
    Answer {
        status,
        location,
        body: body.to_string(),
    }
}

fn seed(state: &ApiState) {
    state.add_subscription("1", "ann@example.org", "111");
    state.add_subscription("2", "ann@example.org", "222");
    let mut store = state.store();
    store.insert_subscription(Some("3"), "other", "bob@example.org", "", "unconfirmed");
    store.insert_subscription(Some("4"), "other", "cy@example.org", "", "confirmed");
    store.insert_subscription(Some("5"), "other", "dee@example.org", "555", "confirmed");
}

/// The calls of both flows and their refusals, in order; the records afterwards; the
/// counters.
async fn script(addr: SocketAddr, state: &ApiState) -> (Vec<Answer>, String, CallCounts) {
    let filter = |w: &str| format!("filter=%7B%22where%22%3A{w}%7D");
    let mut answers = Vec::new();
    let calls: Vec<(&str, String, bool, &str)> = vec![
        ("GET", "/api/subscriptions/9/unsubscribe".into(), true, ""),
        (
            "GET",
            "/api/subscriptions/1/unsubscribe?unsubscriptionCode=000".into(),
            true,
            "",
        ),
        (
            "GET",
            "/api/subscriptions/3/unsubscribe?unsubscriptionCode=".into(),
            true,
            "",
        ),
        (
            "GET",
            format!(
                "/api/subscriptions?{}",
                filter("%7B%22userChannelId%22%3A%22ann%40example.org%22%7D")
            ),
            false,
            "",
        ),
        (
            "GET",
            "/api/subscriptions/1/unsubscribe?unsubscriptionCode=111&userChannelId=ANN%40example.org&additionalServices=_all"
                .into(),
            true,
            "",
        ),
        ("GET", "/api/subscriptions/1".into(), false, ""),
        ("GET", "/api/subscriptions/4/unsubscribe".into(), true, ""),
        (
            "POST",
            "/api/bounces".into(),
            false,
            r#"{"channel":"email","userChannelId":"ann@example.org","hardBounceCount":1,"bounceMessages":[{"date":"d1","message":"m1","extra":true}]}"#,
        ),
        (
            "PATCH",
            "/api/bounces/1".into(),
            false,
            r#"{"hardBounceCount":2,"bounceMessages":[{"date":"d1","message":"m1"},{"date":"d2","message":"m2"}]}"#,
        ),
        (
            "GET",
            format!(
                "/api/bounces?{}",
                filter("%7B%22userChannelId%22%3A%22ann%40example.org%22%2C%22state%22%3A%22active%22%7D")
            ),
            false,
            "",
        ),
        ("PATCH", "/api/bounces/7".into(), false, "{}"),
        ("POST", "/api/bounces".into(), false, "not json"),
        ("GET", "/api/bounces?filter=%5B".into(), false, ""),
        ("POST", "/api/subscriptions".into(), false, "{}"),
        ("GET", "/nowhere".into(), false, ""),
    ];
    for (method, target, anonymous, body) in &calls {
        answers.push(call(addr, method, target, *anonymous, body).await);
    }
    state
        .store()
        .set_redirect(Some("https://notify.example/done"));
    for target in [
        "/api/subscriptions/5/unsubscribe?unsubscriptionCode=000",
        "/api/subscriptions/5/unsubscribe?unsubscriptionCode=555",
    ] {
        answers.push(call(addr, "GET", target, true, "").await);
    }
    let store = state.store();
    let records = serde_json::json!({
        "subscriptions": store.subscriptions(),
        "bounces": store.bounces(),
    })
    .to_string();
    drop(store);
    let counts = CallCounts {
        connections: 0,
        max_open: 0,
        max_in_flight: 0,
        ..state.counts()
    };
    (answers, records, counts)
}

#[tokio::test]
async fn both_transports_answer_alike() {
    let fast = FastApi::start("127.0.0.1:0".parse().unwrap(), false)
        .await
        .expect("fast fake starts");
    seed(&fast.state);
    let (fast_answers, fast_records, fast_counts) = script(fast.addr, &fast.state).await;

    let axum = FakeApi::start().await;
    seed(axum.state());
    let (axum_answers, axum_records, axum_counts) = script(axum.addr(), axum.state()).await;

    let statuses: Vec<u16> = fast_answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            404, 403, 403, 200, 200, 200, 200, 200, 204, 200, 404, 400, 400, 405, 404, 302, 302
        ],
        "{fast_answers:#?}"
    );
    assert_eq!(
        fast_answers[15].location.as_deref(),
        Some("https://notify.example/done?channel=email&err=HttpException%3A%20Forbidden")
    );
    assert_eq!(
        fast_answers[16].location.as_deref(),
        Some("https://notify.example/done?channel=email")
    );
    for (fast, axum) in fast_answers.iter().zip(&axum_answers) {
        assert_eq!(fast, axum);
    }
    assert_eq!(fast_records, axum_records);
    assert_eq!(fast_counts, axum_counts);

    let sub = fast.state.subscription("1").unwrap();
    assert_eq!(sub.state, "deleted");
    assert_eq!(
        fast.state.subscription("2").unwrap().state,
        "deleted",
        "_all deletes the address's other confirmed subscriptions"
    );
    let bounces = fast.state.bounces_of("ann@example.org");
    assert_eq!(bounces.len(), 1);
    assert_eq!(bounces[0].hard_bounce_count, 2);
    assert_eq!(bounces[0].bounce_messages.len(), 2);
    assert!(
        !fast_records.contains("extra"),
        "bounceMessages keep only date and message: {fast_records}"
    );
    assert_eq!(fast_counts.refused, 7, "{fast_counts:?}");
}
