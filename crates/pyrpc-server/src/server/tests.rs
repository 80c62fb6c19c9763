use super::*;

#[test]
fn all_interfaces_are_told_apart() {
    for host in ["", "0.0.0.0", "::"] {
        assert!(binds_all_interfaces(&Address::tcp(host, 1)), "{host:?}");
    }
    for host in ["127.0.0.1", "::1", "localhost", "10.0.0.1"] {
        assert!(!binds_all_interfaces(&Address::tcp(host, 1)), "{host:?}");
    }
    assert!(!binds_all_interfaces(&Address::unix("/tmp/x")));
}

#[test]
fn local_only_is_loopback_or_unix() {
    for (addr, local) in [
        (Address::tcp("127.0.0.1", 1), true),
        (Address::tcp("::1", 1), true),
        (Address::unix("/tmp/x"), true),
        (Address::tcp("0.0.0.0", 1), false),
        (Address::tcp("10.0.0.1", 1), false),
    ] {
        assert_eq!(is_local_only(&addr), local, "{addr}");
    }
}
