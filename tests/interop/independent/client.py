"""The independent client: handshake, calls, timeouts, nb calls, streams.

Part of the independent peer (``tests/interop/independent_peer.py``): it shares
no code with pyrpc.
"""

import socket
import time
import uuid

from .frames import ConnectionClosed, parse_address, recv_frame, send_frame, tls_context
from .messages import MAX_FRAME_LEN, PEER_NAME, PROTOCOL_VERSION, pb
from .values import from_value, to_value


class RemoteException(Exception):
    """An error response: carries the pyrpc.v1.RemoteError."""

    def __init__(self, remote):
        super().__init__(f"{remote.type_name}: {remote.message}")
        self.remote = remote


class CallTimeout(Exception):
    """No answer within the call's timeout."""


class IndependentClient:
    """A blocking client: one connection, requests matched to responses by id."""

    def __init__(self, address_text, connect_timeout=5.0):
        self.family, self.address = parse_address(address_text)
        self.connect_timeout = connect_timeout
        self.sock = None
        self.next_id = 1
        self.early = {}  # responses that arrived for other requests, by id
        self.server_hello = None

    def connect(self):
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.address)
            tls = tls_context(server_side=False)
            if tls is not None and self.family == socket.AF_INET:
                sock = tls.wrap_socket(sock, server_hostname=self.address[0])
            send_frame(sock, pb.ClientFrame(hello=pb.ClientHello(
                protocol_version=PROTOCOL_VERSION, peer_name=PEER_NAME, max_frame_len=MAX_FRAME_LEN
            )))
            frame = recv_frame(sock, pb.ServerFrame)
        except BaseException:
            sock.close()
            raise
        if frame.WhichOneof("kind") != "hello":
            sock.close()
            raise ConnectionClosed("the server did not answer with a hello")
        if frame.hello.HasField("error"):
            sock.close()
            raise RemoteException(frame.hello.error)
        if frame.hello.protocol_version != PROTOCOL_VERSION:
            sock.close()
            raise ConnectionClosed(f"the server speaks protocol {frame.hello.protocol_version}")
        self.server_hello = frame.hello
        self.sock = sock
        self.early.clear()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, timeout=None, **kind):
        """Sends one request, returns the Response; raises CallTimeout after `timeout` s."""
        if self.sock is None:
            self.connect()
        request_id = self.next_id
        self.next_id += 1
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            send_frame(self.sock, pb.ClientFrame(request=pb.Request(id=request_id, **kind)))
            while request_id not in self.early:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise socket.timeout()
                self.sock.settimeout(left)
                frame = recv_frame(self.sock, pb.ServerFrame)
                if frame.WhichOneof("kind") != "response":
                    raise ConnectionClosed("expected a response")
                self.early[frame.response.id] = frame.response
        except socket.timeout:
            # The answer may still come; a fresh connection keeps it from being
            # mistaken for the answer to a later request.
            self.close()
            raise CallTimeout(f"no answer within {timeout} s") from None
        except BaseException:
            self.close()
            raise
        return self.early.pop(request_id)

    @staticmethod
    def outcome(response):
        kind = response.WhichOneof("kind")
        if kind == "value":
            return from_value(response.value)
        if kind == "error":
            raise RemoteException(response.error)
        raise ConnectionClosed(f"unexpected response kind {kind}")

    @staticmethod
    def make_call(method, args, kwargs, timeout=None):
        call = pb.Call(method=method, timeout_ms=int(timeout * 1000) if timeout else 0)
        call.args.extend(to_value(a) for a in args)
        for name, value in kwargs.items():
            call.kwargs.append(pb.Kwarg(name=name, value=to_value(value)))
        return call

    def call(self, method, *args, call_timeout=None, **kwargs):
        call = self.make_call(method, args, kwargs, call_timeout)
        return self.outcome(self.request(timeout=call_timeout, call=call))

    def nb_call(self, method, *args, nb_fetch_tick=0.5, **kwargs):
        """Submit, then Fetch until done, then Release. Returns (result, pending answers)."""
        call_id = uuid.uuid4().bytes
        submit = pb.Submit(call_id=call_id, call=self.make_call(method, args, kwargs), keep_ms=60_000)
        response = self.request(timeout=10, submit=submit)
        if response.WhichOneof("kind") != "ack":
            self.outcome(response)  # raises the error
        pending = 0
        while True:
            fetch = pb.Fetch(call_id=call_id, wait_ms=int(nb_fetch_tick * 1000))
            response = self.request(timeout=nb_fetch_tick + 10, fetch=fetch)
            if response.WhichOneof("kind") != "pending":
                break
            pending += 1
        try:
            return self.outcome(response), pending
        finally:
            self.request(timeout=10, release=pb.Release(call_id=call_id))

    def stream(self, method, *args, window=8, cancel_after=None, grant=True):
        """A streaming call: returns (items, final response kind, most items
        ever outstanding). Grants `window` more credit each time `window` items
        were taken (never, with `grant` false); after `cancel_after` items,
        sends Cancel and reads on until the call's response (items already on
        the wire are counted, not kept)."""
        if self.sock is None:
            self.connect()
        call = self.make_call(method, args, {})
        call.stream_window = window
        request_id = self.next_id
        cancel_id = request_id + 1
        self.next_id += 2
        self.sock.settimeout(20)
        send_frame(self.sock, pb.ClientFrame(request=pb.Request(id=request_id, call=call)))
        items, granted, taken_since, outstanding_max = [], window, 0, 0
        cancelled = acked = False
        final = None
        try:
            while final is None or (cancelled and not acked):
                frame = recv_frame(self.sock, pb.ServerFrame)
                kind = frame.WhichOneof("kind")
                if kind == "item":
                    assert frame.item.id == request_id, f"an item for request {frame.item.id}"
                    assert final is None, "an item after the call's response"
                    outstanding_max = max(outstanding_max, len(items) + 1 - (granted - window))
                    assert len(items) < granted, f"item {len(items) + 1} beyond the {granted} granted"
                    items.append(from_value(frame.item.value))
                    if cancelled:
                        continue
                    if cancel_after is not None and len(items) >= cancel_after:
                        send_frame(self.sock, pb.ClientFrame(
                            request=pb.Request(id=cancel_id, cancel=pb.Cancel(id=request_id))))
                        cancelled = True
                        continue
                    taken_since += 1
                    if grant and taken_since == window:
                        send_frame(self.sock, pb.ClientFrame(credit=pb.Credit(id=request_id, items=window)))
                        granted += window
                        taken_since = 0
                elif kind == "response":
                    if frame.response.id == cancel_id:
                        assert frame.response.WhichOneof("kind") == "ack", "Cancel not acked"
                        acked = True
                    elif frame.response.id == request_id:
                        final = frame.response
                    else:
                        self.early[frame.response.id] = frame.response
                else:
                    raise ConnectionClosed(f"unexpected frame {kind}")
        except BaseException:
            self.close()
            raise
        return items, final, outstanding_max

    def ping(self, timeout):
        try:
            return self.request(timeout=timeout, ping=pb.Ping()).WhichOneof("kind") == "ack"
        except (OSError, ConnectionClosed, CallTimeout, RemoteException):
            return False

    def shutdown(self):
        response = self.request(timeout=10, shutdown=pb.Shutdown())
        if response.WhichOneof("kind") != "ack":
            self.outcome(response)
            raise ConnectionClosed(f"shutdown answered with {response.WhichOneof('kind')}")
