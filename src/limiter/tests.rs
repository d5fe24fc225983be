use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_by_the_ipv4() {
    assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
    assert_eq!(
        client_key(ip("2001:db8:1:2:aaaa::1")),
        client_key(ip("2001:db8:1:2:bbbb::9"))
    );
    assert_ne!(
        client_key(ip("2001:db8:1:2::1")),
        client_key(ip("2001:db8:1:3::1"))
    );
    assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
}

#[tokio::test(start_paused = true)]
async fn blocks_at_threshold_until_the_window_passes() {
    let l = FailedUnsubscribeLimiter::new(3, Duration::from_secs(60));
    let a = ip("192.0.2.1");
    assert!(!l.record_failure(a));
    assert!(!l.record_failure(a));
    assert!(!l.is_blocked(a));
    assert!(l.record_failure(a), "the third failure blocks");
    assert!(l.is_blocked(a));
    assert!(
        !l.is_blocked(ip("192.0.2.2")),
        "other clients are not affected"
    );

    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(l.is_blocked(a));
    assert_eq!(l.blocked_for(a), Some(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!l.is_blocked(a));

    // Counting starts over once the block has run out.
    assert!(!l.record_failure(a));
    assert!(!l.is_blocked(a));
}

#[tokio::test(start_paused = true)]
async fn failures_spread_over_more_than_a_window_do_not_block() {
    let l = FailedUnsubscribeLimiter::new(3, Duration::from_secs(60));
    let a = ip("192.0.2.1");
    l.record_failure(a);
    l.record_failure(a);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(!l.record_failure(a));
    assert!(!l.is_blocked(a));
    assert!(!l.record_failure(a));
    assert!(l.record_failure(a));
    assert!(l.is_blocked(a));
}

#[tokio::test(start_paused = true)]
async fn ipv6_neighbours_share_one_count() {
    let l = FailedUnsubscribeLimiter::new(2, Duration::from_secs(60));
    l.record_failure(ip("2001:db8::1"));
    l.record_failure(ip("2001:db8::2"));
    assert!(l.is_blocked(ip("2001:db8::3")));
    assert!(!l.is_blocked(ip("2001:db8:0:1::1")));
}

#[test]
fn an_absurdly_long_window_is_cut_rather_than_overflowing() {
    let l = FailedUnsubscribeLimiter::new(2, Duration::from_secs(u64::MAX));
    let a = ip("192.0.2.1");
    l.record_failure(a);
    assert!(l.record_failure(a));
    assert!(l.is_blocked(a));
    assert!(l.blocked_for(a).unwrap() <= FailedUnsubscribeLimiter::MAX_WINDOW);
}

#[test]
fn threshold_zero_is_off() {
    let l = FailedUnsubscribeLimiter::new(0, Duration::from_secs(60));
    let a = ip("192.0.2.1");
    for _ in 0..100 {
        assert!(!l.record_failure(a));
    }
    assert!(!l.is_blocked(a));
    assert_eq!(l.tracked(), 0);
}

#[tokio::test(start_paused = true)]
async fn spraying_addresses_is_bounded_and_keeps_blocked_clients() {
    let cap = 64;
    let l = FailedUnsubscribeLimiter::with_max_tracked(2, Duration::from_secs(600), cap);
    let attacker = ip("198.51.100.9");
    l.record_failure(attacker);
    l.record_failure(attacker);
    assert!(l.is_blocked(attacker));
    for i in 0..10_000u32 {
        l.record_failure(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
    }
    assert!(l.tracked() <= cap, "tracked {} > cap {cap}", l.tracked());
    assert!(l.is_blocked(attacker), "a blocked client was evicted");
}

#[tokio::test(start_paused = true)]
async fn expired_records_are_pruned() {
    let l = FailedUnsubscribeLimiter::new(5, Duration::from_secs(10));
    for i in 0..100u32 {
        l.record_failure(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
    }
    assert_eq!(l.tracked(), 100);
    tokio::time::advance(Duration::from_secs(11)).await;
    // Touch every shard so each one prunes.
    for i in 0..1000u32 {
        l.record_failure(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i)));
    }
    assert_eq!(l.tracked(), 1000);
}

#[test]
fn connection_limits_global_and_per_ip_and_release_on_drop() {
    let l = ConnectionLimiter::new(3, 2);
    let a = ip("192.0.2.1");
    let b = ip("192.0.2.2");
    let p1 = l.try_acquire(a).unwrap();
    let p2 = l.try_acquire(a).unwrap();
    assert_eq!(l.try_acquire(a).unwrap_err(), LimitExceeded::PerIp);
    assert_eq!(l.open(), 2, "a refused attempt holds no slot");
    let p3 = l.try_acquire(b).unwrap();
    assert_eq!(l.try_acquire(b).unwrap_err(), LimitExceeded::Global);
    assert_eq!(l.open_from(a), 2);
    drop(p1);
    assert_eq!(l.open(), 2);
    assert_eq!(l.open_from(a), 1);
    let p4 = l.try_acquire(a).unwrap();
    drop((p2, p3, p4));
    assert_eq!(l.open(), 0);
    assert_eq!(l.open_from(a), 0);
    assert_eq!(l.open_from(b), 0);
    assert!(l.inner.per_ip.iter().all(|m| m.lock().unwrap().is_empty()));
}

#[test]
fn per_ip_limit_counts_an_ipv6_64_as_one_client() {
    let l = ConnectionLimiter::new(100, 1);
    let _p = l.try_acquire(ip("2001:db8::1")).unwrap();
    assert_eq!(
        l.try_acquire(ip("2001:db8::2")).unwrap_err(),
        LimitExceeded::PerIp
    );
    assert!(l.try_acquire(ip("2001:db8:0:1::1")).is_ok());
}

#[test]
fn reassign_moves_the_slot_to_the_real_client() {
    let l = ConnectionLimiter::new(10, 1);
    let proxy = ip("10.0.0.1");
    let client = ip("192.0.2.1");
    let mut p1 = l.try_acquire(proxy).unwrap();
    p1.reassign(client).unwrap();
    assert_eq!(l.open_from(proxy), 0);
    assert_eq!(l.open_from(client), 1);
    let mut p2 = l.try_acquire(proxy).unwrap();
    assert_eq!(p2.reassign(client).unwrap_err(), LimitExceeded::PerIp);
    assert_eq!(p2.key(), proxy, "a failed reassign keeps the old address");
    assert_eq!(l.open(), 2);
    drop((p1, p2));
    assert_eq!(l.open(), 0);
    assert_eq!(l.open_from(client), 0);
}

#[test]
fn permits_from_many_threads_all_come_back() {
    let l = ConnectionLimiter::new(1000, 1000);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let l = l.clone();
            s.spawn(move || {
                for i in 0..500u32 {
                    let a = IpAddr::V4(std::net::Ipv4Addr::new(10, t, 0, (i % 7) as u8));
                    let _p = l.try_acquire(a).unwrap();
                }
            });
        }
    });
    assert_eq!(l.open(), 0);
}

#[test]
fn the_byte_budget_refuses_growth_past_its_end_and_frees_on_drop() {
    let b = ByteBudget::new(100);
    let mut c1 = b.charge();
    assert!(c1.resize(60));
    let mut c2 = b.charge();
    assert!(!c2.resize(41), "60 + 41 > 100");
    assert_eq!(c2.bytes(), 0);
    assert!(c2.resize(40));
    assert_eq!(b.available(), 0);
    assert!(c1.resize(10));
    assert_eq!(b.used(), 50);
    drop((c1, c2));
    assert_eq!(b.used(), 0);
}

#[test]
fn connections_are_limited_per_network_and_stress_starts_at_its_mark() {
    let l = ConnectionLimiter::with_network(100, 2, 3, 4);
    let held: Vec<_> = ["192.0.2.1", "192.0.2.1", "192.0.2.2"]
        .iter()
        .map(|a| l.try_acquire(ip(a)).unwrap())
        .collect();
    assert_eq!(
        l.try_acquire(ip("192.0.2.3")).unwrap_err(),
        LimitExceeded::PerNetwork,
        "a fourth connection from one /24"
    );
    assert_eq!(l.open(), 3, "a refused attempt holds no slot");
    assert_eq!(l.open_from(ip("192.0.2.3")), 0);
    assert!(!l.stressed());
    let other = l.try_acquire(ip("198.51.100.1")).unwrap();
    assert!(l.stressed());
    assert_eq!(l.open_from_network(ip("192.0.2.200")), 3);
    drop((held, other));
    assert!(!l.stressed());
    assert_eq!(l.open_from_network(ip("192.0.2.200")), 0);
    assert_eq!(
        network_key(ip("2001:db8:1:2::5")),
        network_key(ip("2001:db8:1:2:ffff::1"))
    );
}

#[tokio::test(start_paused = true)]
async fn wrong_codes_block_the_id_whatever_the_client() {
    let l = FailedUnsubscribeLimiter::new(100, Duration::from_secs(60))
        .with_per_id(3, Duration::from_secs(60));
    for i in 0..2u8 {
        assert_eq!(
            l.record_wrong_code(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, i, 1)), "s1"),
            NewBlocks::default()
        );
    }
    let third = l.record_wrong_code(ip("10.9.9.9"), "s1");
    assert!(third.id && !third.client);
    assert!(l.id_blocked_for("s1").is_some());
    assert!(l.id_blocked_for("s2").is_none());
    assert!(!l.is_blocked(ip("10.9.9.9")));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(l.id_blocked_for("s1").is_none());
}
