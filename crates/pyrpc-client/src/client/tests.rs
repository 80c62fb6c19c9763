use super::*;

#[test]
fn client_is_send_sync_clone_and_its_futures_are_send() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Client>();
    let c = Client::new(Address::tcp("127.0.0.1", 1));
    assert_send(&c.call("m", Args::new()));
    assert_send(&c.nb_call("m", Args::new()));
    assert_send(&c.connected(Duration::from_secs(1)));
    assert_send(&c.shutdown());
}

#[test]
fn wire_call_keeps_order_and_kwargs() {
    let call = wire_call("echo", Args::new().arg(1).arg("a").kwarg("k", 2.5), 40);
    assert_eq!(call.method, "echo");
    assert_eq!(call.args.len(), 2);
    assert_eq!(
        raw::decode_value(call.args[1].clone(), 4),
        Ok(Value::from("a"))
    );
    assert_eq!(call.kwargs[0].name, "k");
    assert_eq!(call.timeout_ms, 40);
}

#[test]
fn unexpected_kinds_are_protocol_errors() {
    let e = expect_ack(response::Kind::Pending(wire::Pending {}), "ping");
    assert!(
        matches!(&e, Err(CallError::Protocol(p)) if p.to_string() == "the server answered a ping with pending"),
        "{e:?}"
    );
}
