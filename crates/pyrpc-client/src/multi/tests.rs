//! Unit tests of `MultiClient`'s choice of server.

use super::*;

#[test]
fn multi_client_is_send_sync_and_its_futures_are_send() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<MultiClient>();
    let c = MultiClient::new([Address::tcp("127.0.0.1", 1)], ClientConfig::default()).unwrap();
    assert_send(&c.call("m", Args::new()));
    assert_send(&c.nb_call("m", Args::new()));
    assert_send(&c.connected(Duration::from_secs(1)));
}

#[test]
fn order_puts_skipped_servers_last_and_takes_ties_in_turn() {
    let c = MultiClient::new(
        (1..=3).map(|p| Address::tcp("127.0.0.1", p)),
        ClientConfig::default(),
    )
    .unwrap();
    let firsts: Vec<usize> = (0..3).map(|_| c.order()[0]).collect();
    // In turn, from a random start.
    assert_eq!(firsts[1], (firsts[0] + 1) % 3);
    assert_eq!(firsts[2], (firsts[0] + 2) % 3);
    c.member(1).mark_down();
    for _ in 0..3 {
        let o = c.order();
        assert_eq!(o.len(), 3);
        assert_eq!(o[2], 1, "{o:?}");
    }
    c.member(1).mark_up();
    assert!((0..3).any(|_| c.order()[0] == 1));
}
