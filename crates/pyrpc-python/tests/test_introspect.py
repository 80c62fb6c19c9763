"""pyrpc.list_methods() and pyrpc.stats(): the ListMethods and Stats requests."""

import pytest

import pyrpc
from pyrpc import Client, MethodInfo, NoSocket

BUILTINS = [
    MethodInfo("connected", "()", "Built in: returns True (the server is up)."),
    MethodInfo("shutdown", "()", "Built in: shuts the server down gracefully."),
]


def by_name(methods):
    return {m.name: m for m in methods}


def test_lists_public_callables_with_signatures_and_docs(server):
    methods = pyrpc.list_methods(Client(address=server.address))
    assert all(isinstance(m, MethodInfo) for m in methods)
    names = [m.name for m in methods]
    # Sorted, then the built-ins.
    assert methods[-2:] == BUILTINS
    assert names[:-2] == sorted(names[:-2])
    listed = by_name(methods)
    # A bound method's signature has no self.
    assert listed["echo"] == MethodInfo("echo", "(*args, **kwargs)", None)
    assert listed["add"] == MethodInfo("add", "(a, b)", "Return a + b.")
    assert listed["sleep"].signature == "(seconds)"
    assert "stats" in listed
    # Never listed: private names, non-callables, attributes that raise when
    # loaded (this property), the Server machinery.
    for hidden in ["_private", "value", "prop", "start", "start_in_thread", "shutdown_sync",
                   "log_call", "log_exception", "get_call_logging_func", "bound_address",
                   "callee_type", "address"]:
        assert hidden not in listed, hidden
    assert names.count("connected") == 1 and names.count("shutdown") == 1


def test_listing_matches_what_is_callable(server):
    c = Client(address=server.address)
    for m in pyrpc.list_methods(c):
        if m.name not in ("connected", "shutdown"):
            # Listed names exist remotely: a wrong call is a TypeError or a
            # result, never "no such method" (AttributeError).
            try:
                getattr(c, m.name)(object_that_no_method_takes=1)
            except TypeError:
                pass


def test_callee_redirection_lists_the_callee(spawn_server, transport):
    s = spawn_server(transport, kind="callee")
    names = [m.name for m in pyrpc.list_methods(Client(address=s.address))]
    assert names == ["echo", "whoami", "connected", "shutdown"]


def test_assigned_function_is_listed(spawn_server, transport):
    s = spawn_server(transport, kind="plain")
    listed = by_name(pyrpc.list_methods(Client(address=s.address)))
    assert listed["echo"].signature == "(*args, **kwargs)"
    # A bare Server serves nothing of its own.
    assert sorted(listed) == ["connected", "echo", "shutdown"]


def test_a_server_method_named_stats_stays_callable(server):
    c = Client(address=server.address)
    assert c.stats() == "the server's own stats"
    assert isinstance(pyrpc.stats(c), dict)


def test_stats_counts_calls(spawn_server):
    s = spawn_server("unix")
    c = Client(address=s.address)
    before = pyrpc.stats(c)
    assert set(before) == {
        "calls", "errors", "in_flight", "kept_results", "connections", "uptime",
        "latency_p50", "latency_p90", "latency_p99", "latency_max",
    }
    for i in range(5):
        c.add(i, 1)
    with pytest.raises(ValueError):
        c.raise_builtin("ValueError", "x")
    c.nb_echo(1, nb_fetch_tick=0.05)
    after = pyrpc.stats(c)
    assert after["calls"] - before["calls"] == 7
    assert after["errors"] - before["errors"] == 1
    assert after["connections"] >= 1
    assert after["uptime"] > 0
    assert 0 < after["latency_p50"] <= after["latency_max"] < 10


def test_introspection_of_an_absent_server_raises_no_socket(fresh_address):
    c = Client(address=fresh_address, socket_connect_timeout=1)
    with pytest.raises(NoSocket):
        pyrpc.list_methods(c)
    with pytest.raises(NoSocket):
        pyrpc.stats(c)
