"""The independent server: handshake, dispatch, nb results, streamed replies.

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import builtins
import math
import os
import socket
import threading
import time

from .errors import error, exception_error
from .frames import ConnectionClosed, parse_address, recv_body, recv_frame, request_id_of, send_frame, tls_context
from .messages import MAX_DEPTH, MAX_FRAME_LEN, PEER_NAME, PROTOCOL_VERSION, pb
from .values import from_value, to_value


class TestService:
    """The methods every interop server exposes."""

    def echo(self, *args, **kwargs):
        return args, kwargs

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def raise_(self, type_name, *args):
        exc_type = getattr(builtins, type_name, None)
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise ValueError(f"no builtin exception named {type_name!r}")
        raise exc_type(*args)

    def big(self, n):
        return b"1" * n


class StreamState:
    """The credit and cancellation of one streamed reply (a `count` call)."""

    def __init__(self, window):
        self.cond = threading.Condition()
        self.credit = window
        self.cancelled = False

    def grant(self, items):
        with self.cond:
            self.credit += items
            self.cond.notify_all()

    def cancel(self):
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def take(self):
        """Waits for one unit of credit; False when the call was cancelled."""
        with self.cond:
            while self.credit <= 0 and not self.cancelled:
                self.cond.wait()
            if self.cancelled:
                return False
            self.credit -= 1
            return True


class NbResult:
    """A submitted call: done once the call finished; kept until released or reaped."""

    def __init__(self, keep_s):
        self.done = threading.Event()
        self.outcome = None  # ("value", pb.Value) or ("error", pb.RemoteError)
        self.keep_s = keep_s
        self.finished_at = None


class IndependentServer:
    DEFAULT_KEEP_S = 600.0
    CLEAN_INTERVAL_S = 1.0
    SHUTDOWN_GRACE_S = 5.0

    def __init__(self, address_text):
        self.family, self.address = parse_address(address_text)
        self.tls = tls_context(server_side=True)
        self.service = TestService()
        self.results = {}  # call id -> NbResult
        self.results_lock = threading.Lock()
        self.stopping = threading.Event()
        self.in_flight = 0
        self.in_flight_cond = threading.Condition()
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.started = time.monotonic()
        self.stats_lock = threading.Lock()
        self.calls = self.errors = self.running = 0
        self.latencies = []  # seconds, of every counted call (a test peer: unbounded)

    def stats_now(self):
        """ServerStats, counted as docs/PROTOCOL.md says."""
        with self.stats_lock:
            lat = sorted(self.latencies)
            stats = pb.ServerStats(calls=self.calls, errors=self.errors, in_flight=self.running)
        with self.results_lock:
            stats.kept_results = len(self.results)
        with self.conns_lock:
            stats.connections = len(self.conns)
        stats.uptime_ms = int((time.monotonic() - self.started) * 1000)

        def at(q):  # the exact q-quantile (rank ceil(q * n)), in microseconds, rounded up
            if not lat:
                return 0
            return math.ceil(lat[max(1, math.ceil(q * len(lat))) - 1] * 1e6)

        stats.latency_p50_us, stats.latency_p90_us, stats.latency_p99_us = at(0.5), at(0.9), at(0.99)
        stats.latency_max_us = at(1.0)
        return stats

    # ----- lifecycle -----

    def serve(self):
        listener = socket.socket(self.family, socket.SOCK_STREAM)
        if self.family == socket.AF_INET:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self.address)
        listener.listen(64)
        listener.settimeout(0.05)  # so the accept loop notices a shutdown
        threading.Thread(target=self.reaper, daemon=True).start()
        # The address bound (with port 0, the port the OS chose), in the
        # interop test's ADDRESS form; `cargo xtask interop-test` waits for it.
        bound = listener.getsockname()
        if self.family == socket.AF_INET:
            print(f"listening on {bound[0]}:{bound[1]}", flush=True)
        else:
            print(f"listening on unix:{bound}", flush=True)
        try:
            while not self.stopping.is_set():
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    continue
                conn.settimeout(None)
                if self.tls is not None and self.family == socket.AF_INET:
                    # The handshake runs on the connection's thread, at its first read.
                    conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                with self.conns_lock:
                    self.conns.add(conn)
                threading.Thread(target=self.connection, args=(conn,), daemon=True).start()
        finally:
            listener.close()
            self.drain()
            if self.family == socket.AF_UNIX:
                try:
                    os.unlink(self.address)
                except FileNotFoundError:
                    pass
        print("independent server stopped", flush=True)

    def drain(self):
        """Lets running calls finish within the grace period, then closes every connection."""
        deadline = time.monotonic() + self.SHUTDOWN_GRACE_S
        with self.in_flight_cond:
            while self.in_flight and time.monotonic() < deadline:
                self.in_flight_cond.wait(deadline - time.monotonic())
        with self.conns_lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()

    def reaper(self):
        while not self.stopping.wait(self.CLEAN_INTERVAL_S):
            now = time.monotonic()
            with self.results_lock:
                for call_id in [
                    cid
                    for cid, r in self.results.items()
                    if r.finished_at is not None and now - r.finished_at > r.keep_s
                ]:
                    del self.results[call_id]

    # ----- one connection -----

    def connection(self, conn):
        write_lock = threading.Lock()

        def answer(request_id, **kind):
            response = pb.Response(id=request_id, **kind)
            with write_lock:
                send_frame(conn, pb.ServerFrame(response=response))

        streams = {}  # request id -> StreamState, for Credit and Cancel

        try:
            first = recv_frame(conn, pb.ClientFrame)  # undecodable: closed without a word
            hello = pb.ServerHello(protocol_version=PROTOCOL_VERSION, peer_name=PEER_NAME)
            if first.WhichOneof("kind") != "hello":
                # Anything but a hello first: a refusing hello, then the close.
                hello.error.CopyFrom(
                    error(pb.PROTOCOL, "RuntimeError", "the first frame must be a hello")
                )
                send_frame(conn, pb.ServerFrame(hello=hello))
                return
            if first.hello.protocol_version != PROTOCOL_VERSION:
                hello.error.CopyFrom(
                    error(
                        pb.PROTOCOL,
                        "RuntimeError",
                        f"unsupported protocol version {first.hello.protocol_version}",
                    )
                )
                send_frame(conn, pb.ServerFrame(hello=hello))
                return
            caps = hello.capabilities
            caps.nonblocking = True
            caps.max_frame_len = MAX_FRAME_LEN
            caps.max_value_depth = MAX_DEPTH
            caps.pickle = False
            caps.max_in_flight_per_connection = 64  # not enforced: a thread per request
            send_frame(conn, pb.ServerFrame(hello=hello))
            while True:
                body = recv_body(conn)
                received = time.monotonic()  # a call's deadline starts here
                try:
                    frame = pb.ClientFrame.FromString(body)
                except Exception:  # DecodeError: answer it if its id can be read
                    request_id = request_id_of(body)
                    if request_id is None:
                        return
                    answer(request_id, error=error(pb.PROTOCOL, "RuntimeError", "undecodable request"))
                    continue
                if frame.WhichOneof("kind") == "credit":
                    state = streams.get(frame.credit.id)
                    if state is not None:  # one naming no running stream is ignored
                        state.grant(frame.credit.items)
                    continue
                if frame.WhichOneof("kind") != "request":
                    return  # a second hello, an auth frame, no known kind: close
                request = frame.request
                if request.WhichOneof("kind") == "cancel":
                    state = streams.get(request.cancel.id)
                    if state is not None:
                        state.cancel()
                    answer(request.id, ack=pb.Ack())
                    continue
                if (
                    request.WhichOneof("kind") == "call"
                    and request.call.method == "count"
                    and not self.stopping.is_set()
                ):
                    state = streams[request.id] = StreamState(request.call.stream_window)
                    threading.Thread(
                        target=self.stream_count,
                        args=(conn, write_lock, request, state, streams, answer),
                        daemon=True,
                    ).start()
                    continue
                # Every request runs on its own thread: answers go out by id, in
                # whatever order the requests finish. Except Submit, handled here
                # before the next frame is read (PROTOCOL.md's ordering guarantee:
                # a Fetch right behind its Submit finds the call).
                with self.in_flight_cond:
                    self.in_flight += 1
                if frame.request.WhichOneof("kind") == "submit":
                    self.run_request(frame.request, received, answer)
                    continue
                threading.Thread(
                    target=self.run_request, args=(frame.request, received, answer), daemon=True
                ).start()
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self.conns_lock:
                self.conns.discard(conn)
            conn.close()

    def stream_count(self, conn, write_lock, request, state, streams, answer):
        """`count(n)`: the items 0 .. n-1 as StreamItems, each after one unit of
        the client's credit, then `stream_end`; `CANCELLED` if the client sent
        Cancel. A client that takes no streams (`stream_window` 0) is refused."""
        try:
            if request.call.stream_window == 0:
                answer(request.id, error=error(
                    pb.UNSUPPORTED_VALUE, "RuntimeError",
                    "count() streams its reply, but the client does not take streams"))
                return
            n = from_value(request.call.args[0]) if request.call.args else 0
            for i in range(n):
                if not state.take():
                    answer(request.id, error=error(
                        pb.CANCELLED, "CancelledError", "the call was cancelled by its caller",
                        module="asyncio"))
                    return
                item = pb.StreamItem(id=request.id, value=to_value(i))
                with write_lock:
                    send_frame(conn, pb.ServerFrame(item=item))
            answer(request.id, stream_end=pb.StreamEnd(items=n))
        except OSError:
            pass  # the client went away
        finally:
            streams.pop(request.id, None)

    def run_request(self, request, received, answer):
        try:
            kind = self.handle(request, received)
            try:
                answer(request.id, **kind)
            except OSError:
                pass  # the client went away; a Call's result is lost with it
            if "ack" in kind and request.WhichOneof("kind") == "shutdown":
                self.stopping.set()
        finally:
            with self.in_flight_cond:
                self.in_flight -= 1
                self.in_flight_cond.notify_all()

    def handle(self, request, received):
        """One request -> the keyword arguments of its Response (one of value/error/ack/pending)."""
        kind = request.WhichOneof("kind")
        if self.stopping.is_set():
            # Pings and a second Shutdown included: a client waiting for the
            # server to go away learns it at once, not when running calls end.
            return {"error": error(pb.SHUTTING_DOWN, "RuntimeError", "the server is shutting down")}
        if kind in ("ping", "shutdown"):
            return {"ack": pb.Ack()}
        if kind == "call":
            return self.call(request.call, received, late_is_error=True)
        if kind == "stats":
            return {"stats": self.stats_now()}
        if kind in ("submit", "fetch", "release"):
            call_id = getattr(request, kind).call_id
            if len(call_id) != 16:
                return {"error": error(pb.PROTOCOL, "RuntimeError", "a call id has 16 bytes")}
            if kind == "submit":
                return self.submit(request.submit, call_id, received)
            return getattr(self, kind)(getattr(request, kind), call_id)
        # No kind, or one this peer does not implement (e.g. from a newer .proto).
        return {"error": error(pb.PROTOCOL, "RuntimeError", f"unsupported request kind {kind}")}

    def call(self, call, received, late_is_error):
        """Runs one Call -> {'value': ...} or {'error': ...}, counted in the stats."""
        name = call.method
        if name == "connected":
            return {"value": to_value(True)}
        if name == "shutdown":
            self.stopping.set()
            return {"value": to_value(None)}
        deadline = received + call.timeout_ms / 1000 if call.timeout_ms else None
        with self.stats_lock:
            self.running += 1
        try:
            outcome = self.run_method(call, deadline)
        finally:
            with self.stats_lock:
                self.running -= 1
        if late_is_error and deadline is not None and time.monotonic() > deadline:
            if outcome.get("error") is None or outcome["error"].kind != pb.DEADLINE_EXCEEDED:
                outcome = {"error": error(pb.DEADLINE_EXCEEDED, "TimeoutError", f"{name}() finished late")}
        with self.stats_lock:
            self.calls += 1
            self.errors += "error" in outcome
            self.latencies.append(time.monotonic() - received)
        return outcome

    def run_method(self, call, deadline):
        name = call.method
        method = None if name.startswith("_") else getattr(self.service, name, None)
        if not callable(method):
            return {
                "error": error(
                    pb.NO_SUCH_METHOD, "AttributeError", f"no callable public method named {name!r}"
                )
            }
        try:
            args = [from_value(a) for a in call.args]
            kwargs = {kw.name: from_value(kw.value) for kw in call.kwargs}
        except (TypeError, ValueError) as exc:
            return {"error": error(pb.UNSUPPORTED_VALUE, "RuntimeError", str(exc))}
        if deadline is not None and time.monotonic() >= deadline:
            return {"error": error(pb.DEADLINE_EXCEEDED, "TimeoutError", f"{name}() did not run")}
        try:
            result = method(*args, **kwargs)
        except TypeError as exc:
            if exc.__traceback__.tb_next is None:  # raised by the call itself: bad arguments
                return {"error": error(pb.BAD_ARGUMENTS, "TypeError", str(exc))}
            return {"error": exception_error(exc)}
        except Exception as exc:  # the method raised: send it back as data
            return {"error": exception_error(exc)}
        try:
            return {"value": to_value(result)}
        except (TypeError, ValueError) as exc:
            return {"error": error(pb.UNSUPPORTED_VALUE, "RuntimeError", str(exc))}

    def submit(self, submit, call_id, received):
        with self.results_lock:
            if call_id in self.results:
                return {"ack": pb.Ack()}  # idempotent: the call already runs or ran
            keep_s = submit.keep_ms / 1000 if submit.keep_ms else self.DEFAULT_KEEP_S
            entry = self.results[call_id] = NbResult(keep_s)
        call = pb.Call()
        call.CopyFrom(submit.call)

        def run():
            with self.in_flight_cond:
                self.in_flight += 1
            try:
                outcome = self.call(call, received, late_is_error=False)
                entry.outcome = next(iter(outcome.items()))
                entry.finished_at = time.monotonic()
                entry.done.set()
            finally:
                with self.in_flight_cond:
                    self.in_flight -= 1
                    self.in_flight_cond.notify_all()

        threading.Thread(target=run, daemon=True).start()
        return {"ack": pb.Ack()}

    def fetch(self, fetch, call_id):
        with self.results_lock:
            entry = self.results.get(call_id)
        if entry is None:
            return {"error": error(pb.UNKNOWN_CALL, "RuntimeError", f"unknown call id {call_id.hex()}")}
        # Hold the fetch up to wait_ms for the call to finish.
        if not entry.done.wait(fetch.wait_ms / 1000):
            return {"pending": pb.Pending()}
        field, message = entry.outcome
        return {field: message}

    def release(self, release, call_id):
        with self.results_lock:
            self.results.pop(call_id, None)
        return {"ack": pb.Ack()}
