use super::*;

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn families_and_values_appear_after_events() {
    let m = Metrics::new();
    let l = m.listener("0.0.0.0:25");
    let c1 = l.connection_opened();
    let _c2 = l.connection_opened();
    drop(c1);
    m.connection_rejected(RejectReason::TooManyPerIp);
    m.connection_rejected(LimitExceeded::Global.into());
    m.session_aborted(AbortReason::CommandTimeout);
    m.tls_handshake(HandshakeMode::Starttls, true);
    m.tls_handshake(HandshakeMode::Implicit, false);
    m.smtp_reply(CommandClass::Rcpt, 550);
    m.smtp_reply(CommandClass::Rcpt, 550);
    m.smtp_reply(CommandClass::Data, 354);
    m.message(MessageKind::Un, MessageOutcome::Accepted);
    m.message(MessageKind::Bn, MessageOutcome::from_code(451));
    m.rcpt_rejected(RcptReason::RateLimited);
    m.api_call(
        ApiEndpoint::Unsubscribe,
        Some(302),
        Duration::from_millis(30),
    );
    m.api_call(ApiEndpoint::FindBounce, None, Duration::from_secs(20));

    let t = m.encode();
    for line in [
        "# TYPE notify_inbound_smtp_connections counter",
        r#"notify_inbound_smtp_connections_total{listener="0.0.0.0:25"} 2"#,
        "# TYPE notify_inbound_smtp_connections_open gauge",
        r#"notify_inbound_smtp_connections_open{listener="0.0.0.0:25"} 1"#,
        r#"notify_inbound_smtp_connections_rejected_total{reason="too_many_per_ip"} 1"#,
        r#"notify_inbound_smtp_connections_rejected_total{reason="too_many_connections"} 1"#,
        r#"notify_inbound_smtp_connections_rejected_total{reason="not_allowed"} 0"#,
        r#"notify_inbound_smtp_sessions_aborted_total{reason="command_timeout"} 1"#,
        r#"notify_inbound_smtp_tls_handshakes_total{mode="starttls",result="ok"} 1"#,
        r#"notify_inbound_smtp_tls_handshakes_total{mode="implicit",result="failed"} 1"#,
        r#"notify_inbound_smtp_tls_handshakes_total{mode="implicit",result="ok"} 0"#,
        r#"notify_inbound_smtp_replies_total{command="rcpt",code="5xx"} 2"#,
        r#"notify_inbound_smtp_replies_total{command="data",code="3xx"} 1"#,
        r#"notify_inbound_smtp_messages_total{kind="un",outcome="accepted"} 1"#,
        r#"notify_inbound_smtp_messages_total{kind="bn",outcome="temporary"} 1"#,
        r#"notify_inbound_smtp_messages_total{kind="postmaster",outcome="refused"} 0"#,
        r#"notify_inbound_smtp_rcpt_rejected_total{reason="rate_limited"} 1"#,
        r#"notify_inbound_api_requests_total{endpoint="unsubscribe",status="3xx"} 1"#,
        r#"notify_inbound_api_requests_total{endpoint="find_bounce",status="error"} 1"#,
        "# TYPE notify_inbound_api_request_duration_seconds histogram",
        "# UNIT notify_inbound_api_request_duration_seconds seconds",
        r#"notify_inbound_api_request_duration_seconds_count{endpoint="unsubscribe"} 1"#,
        r#"notify_inbound_api_request_duration_seconds_bucket{le="0.025",endpoint="unsubscribe"} 0"#,
        r#"notify_inbound_api_request_duration_seconds_bucket{le="0.05",endpoint="unsubscribe"} 1"#,
        r#"notify_inbound_api_request_duration_seconds_bucket{le="10.0",endpoint="find_bounce"} 0"#,
        r#"notify_inbound_api_request_duration_seconds_bucket{le="+Inf",endpoint="find_bounce"} 1"#,
        r#"notify_inbound_api_request_duration_seconds_count{endpoint="create_bounce"} 0"#,
    ] {
        assert!(has_line(&t, line), "missing line {line:?} in\n{t}");
    }
}

#[test]
fn coordination_series_exist_from_the_start_and_count() {
    let m = Metrics::new();
    m.lock_acquisition(LockResult::Acquired);
    m.lock_acquisition(LockResult::Acquired);
    m.lock_release(LockRelease::Expired);
    m.redis_error(RedisOp::Acquire);
    let t = m.encode();
    for line in [
        r#"notify_inbound_coordination_lock_acquisitions_total{result="acquired"} 2"#,
        r#"notify_inbound_coordination_lock_acquisitions_total{result="busy"} 0"#,
        r#"notify_inbound_coordination_lock_releases_total{result="expired"} 1"#,
        r#"notify_inbound_coordination_lock_releases_total{result="released"} 0"#,
        r#"notify_inbound_coordination_redis_errors_total{op="acquire"} 1"#,
        r#"notify_inbound_coordination_redis_errors_total{op="release"} 0"#,
    ] {
        assert!(has_line(&t, line), "missing line {line:?} in\n{t}");
    }
}

#[test]
fn listener_handles_for_the_same_name_share_series() {
    let m = Metrics::new();
    let _a = m.listener("[::]:465").connection_opened();
    let _b = m.listener("[::]:465").connection_opened();
    let t = m.encode();
    assert!(has_line(
        &t,
        r#"notify_inbound_smtp_connections_open{listener="[::]:465"} 2"#
    ));
}

#[test]
fn classes_of_codes_and_statuses() {
    assert_eq!(CodeClass::of(250), CodeClass::C2xx);
    assert_eq!(CodeClass::of(354), CodeClass::C3xx);
    assert_eq!(CodeClass::of(421), CodeClass::C4xx);
    assert_eq!(CodeClass::of(554), CodeClass::C5xx);
    assert_eq!(MessageOutcome::from_code(250), MessageOutcome::Accepted);
    assert_eq!(MessageOutcome::from_code(450), MessageOutcome::Temporary);
    assert_eq!(MessageOutcome::from_code(550), MessageOutcome::Refused);
    assert_eq!(ApiStatus::of(Some(204)), ApiStatus::S2xx);
    assert_eq!(ApiStatus::of(Some(404)), ApiStatus::S4xx);
    assert_eq!(ApiStatus::of(Some(503)), ApiStatus::S5xx);
    assert_eq!(ApiStatus::of(None), ApiStatus::Error);
}

#[test]
fn build_api_certificate_and_process_metrics() {
    let m = Metrics::new();
    let t = m.encode();
    let build = format!(
        r#"notify_inbound_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    );
    assert!(has_line(&t, &build), "missing {build:?} in\n{t}");
    assert!(has_line(&t, "notify_inbound_api_up 0"), "{t}");
    assert!(
        !t.contains("notify_inbound_tls_certificate_expiry_timestamp_seconds{"),
        "no expiry series before a certificate is loaded:\n{t}"
    );
    m.set_api_up(true);
    m.tls_certificate_expiry(CertificateSource::Configured)
        .set(1_900_000_000);
    let t = m.encode();
    assert!(has_line(&t, "notify_inbound_api_up 1"), "{t}");
    assert!(
        has_line(
            &t,
            r#"notify_inbound_tls_certificate_expiry_timestamp_seconds{source="configured"} 1900000000"#
        ),
        "{t}"
    );
    for family in [
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_start_time_seconds gauge",
    ] {
        assert!(has_line(&t, family), "missing {family:?} in\n{t}");
    }
    let rss = t
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no process_resident_memory_bytes sample in\n{t}"));
    assert!(rss > 1_000_000.0, "{rss}");
    assert!(t.ends_with("# EOF\n"), "one EOF, at the end:\n{t}");
    assert_eq!(t.matches("# EOF").count(), 1);
}
