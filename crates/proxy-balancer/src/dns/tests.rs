use super::source::{srv_lb_sets, srv_load_factors, usable};
use super::*;

fn records(list: &[(u16, u16)]) -> Vec<(u16, u16, u16, String)> {
    list.iter()
        .map(|&(priority, weight)| (priority, weight, 80, "t.example.".to_owned()))
        .collect()
}

/// Within a priority the largest weight is 100, the others in proportion (at least 1); a
/// priority whose weights are all 0 shares equally.
#[test]
fn srv_weights_become_load_factors() {
    let lbf = |list: &[(u16, u16)]| -> Vec<i64> {
        srv_load_factors(&records(list))
            .iter()
            .map(|f| i64::from(f.lbf() / 100))
            .collect()
    };
    assert_eq!(lbf(&[(10, 60), (10, 20), (10, 0)]), [100, 33, 1]);
    assert_eq!(lbf(&[(10, 3), (10, 1)]), [100, 33]);
    assert_eq!(lbf(&[(10, 65535), (10, 1)]), [100, 1]);
    assert_eq!(lbf(&[(10, 0), (10, 0)]), [1, 1]);
    assert_eq!(lbf(&[(10, 5), (20, 1)]), [100, 100], "each priority apart");
    assert_eq!(lbf(&[(10, 1), (10, 2)]), [50, 100]);
}

/// Lower priorities come first: ranks, capped at 99.
#[test]
fn srv_priorities_become_lb_sets() {
    let sets: Vec<u8> = srv_lb_sets(&records(&[(20, 1), (10, 1), (30, 1), (10, 5)]))
        .iter()
        .map(|s| s.get())
        .collect();
    assert_eq!(sets, [1, 0, 2, 0]);
    let many: Vec<(u16, u16)> = (0..120).map(|p| (p, 1)).collect();
    let sets = srv_lb_sets(&records(&many));
    assert_eq!(sets.last().map(|s| s.get()), Some(99));
}

#[test]
fn templates_are_checked() {
    let srv = DnsSource::srv(
        MemberParams::new("h2c://grpc.internal:50051").unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(srv.name(), "_http._tcp.grpc.internal");
    let named = DnsSource::srv(
        MemberParams::new("http://x.internal").unwrap(),
        Some("_web._tcp.x.internal"),
    )
    .unwrap();
    assert_eq!(
        named.records(),
        &DnsRecords::Srv("_web._tcp.x.internal".into())
    );
    assert!(DnsSource::srv(MemberParams::new("http://x.internal").unwrap(), Some(" ")).is_err());
    for refused in ["http://[::1]:80", "wss://x.internal", "h2://x.internal"] {
        let err = DnsSource::address(MemberParams::new(refused).unwrap()).unwrap_err();
        assert!(matches!(err, DnsError::Template { .. }), "{refused}: {err}");
    }
}

/// An answer's address no member can have is left out (a DNS answer is input).
#[test]
fn unusable_addresses_are_left_out() {
    for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
        assert!(!usable(bad.parse().unwrap()), "{bad}");
    }
    for good in ["127.0.0.2", "10.0.0.1", "::1", "fd00::7"] {
        assert!(usable(good.parse().unwrap()), "{good}");
    }
}
