"""``DealerLink`` against a ROUTER in this process (loopback), and its timers.

Each test runs in well under a second: the links poll every few milliseconds.
"""
from __future__ import annotations

import logging
import threading
import time

import pytest
import zmq

from sluicegate.common.dealer_link import Backoff, DealerLink, Every, readable
from sluicegate.common.protocol.cluster import Ping, ServiceHeartbeat
from sluicegate.common.transport import Transport, endpoint, recv_within, send
from waiting import wait_until


@pytest.fixture
def router():
    """A bound ROUTER (the peer) and a transport for the links under test."""
    transport = Transport(None)
    sock, port = transport.bind(zmq.ROUTER, "127.0.0.1")
    yield transport, sock, endpoint("127.0.0.1", port)
    sock.close(0)
    transport.close()


class Served:
    """A link served on a thread of its own until ``stop``."""

    def __init__(self, link: DealerLink):
        self.link = link
        self.stop = threading.Event()
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.link.serve(self.stop)
        finally:
            self.link.close()

    def __enter__(self) -> "Served":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.link._outbox is not None:
            self.link.wake()  # a stop alone waits for the poll to end
        self.thread.join(5)
        assert not self.thread.is_alive()


def identity_of_first(sock: zmq.Socket, timeout_s: float = 5.0) -> tuple:
    """The next (identity, message) the peer gets."""
    got = recv_within(sock, timeout_s, routed=True)
    assert got is not None, "nothing reached the peer"
    return got


def test_every_message_reaches_the_handler_with_its_time_and_counts_as_heard(router):
    transport, peer, address = router
    received = []
    link = DealerLink(transport, address, b"me", lambda m, now: received.append((m, now)),
                      poll_s=0.01)
    link.open()
    link.send(Ping(1))  # introduces the link's identity to the ROUTER
    assert identity_of_first(peer) == (b"me", Ping(1))
    with Served(link):
        send(peer, ServiceHeartbeat(1), identity=b"me")
        send(peer, ServiceHeartbeat(2), identity=b"me")
        wait_until(lambda: len(received) == 2, 5, "two messages handled")
    assert [m.sent_at_ms for m, _ in received] == [1, 2]
    assert received[0][1] <= received[1][1] <= time.monotonic()
    assert link.last_heard == received[1][1]


def test_the_tick_runs_every_pass_and_sends_what_is_due(router):
    transport, peer, address = router
    beats = Every(0.02)
    sent = []

    def tick(now):
        if beats.due(now):
            sent.append(now)
            link.send(ServiceHeartbeat(len(sent)))

    link = DealerLink(transport, address, b"ticker", tick=tick, poll_s=0.005)
    with Served(link):
        first = identity_of_first(peer)
        assert first[0] == b"ticker" and first[1] == ServiceHeartbeat(1)
        wait_until(lambda: len(sent) >= 4, 5, "four heartbeats")
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert all(gap >= 0.02 for gap in gaps), gaps


def test_a_silent_peer_ends_serve_with_false_and_stop_with_true(router):
    transport, _, address = router
    link = DealerLink(transport, address, b"lonely", poll_s=0.005, silence_s=0.05)
    started = time.monotonic()
    assert link.serve(threading.Event()) is False
    assert 0.05 <= time.monotonic() - started < 2.0
    link.close()

    stop = threading.Event()
    stop.set()
    quiet = DealerLink(transport, address, b"stopped", poll_s=0.005, silence_s=0.05)
    assert quiet.serve(stop) is True
    quiet.close()


def test_posted_messages_go_out_at_once_not_after_the_poll(router):
    transport, peer, address = router
    link = DealerLink(transport, address, b"poster", poll_s=10.0, outbox=True)
    with Served(link):
        wait_until(lambda: link.sock is not None, 5, "the link to open")
        time.sleep(0.05)  # the loop is in its 10 s poll now
        posted = time.monotonic()
        link.post(Ping(7))
        identity, message = identity_of_first(peer, 2.0)
        assert (identity, message) == (b"poster", Ping(7))
        assert time.monotonic() - posted < 1.0, "the wake-up cut the poll short"


def test_malformed_messages_are_dropped_and_the_loop_goes_on(router, caplog):
    transport, peer, address = router
    received = []
    link = DealerLink(transport, address, b"victim", lambda m, now: received.append(m),
                      poll_s=0.005, peer="the test")
    link.open()
    assert link.send(Ping(1), wait=False)  # introduces the link's identity to the ROUTER
    identity_of_first(peer)
    with caplog.at_level(logging.WARNING, logger="sluicegate.dealer_link"), Served(link):
        peer.send_multipart([b"victim", b"\x00not msgpack"])
        send(peer, Ping(2), identity=b"victim")
        wait_until(lambda: received, 5, "the good message")
    assert received == [Ping(2)]
    assert "dropped a malformed message from the test" in caplog.text


def test_a_watched_socket_is_polled_with_the_link(router):
    transport, peer, address = router
    calls = []
    other, port = transport.bind(zmq.ROUTER, "127.0.0.1")
    client = transport.connect(zmq.DEALER, endpoint("127.0.0.1", port))
    link = DealerLink(transport, address, b"watcher", poll_s=0.005)

    def on_readable():
        calls.append(recv_within(other, 0, routed=True)[1])

    link.watch(other, on_readable)
    try:
        with Served(link):
            send(client, Ping(3))
            wait_until(lambda: calls, 5, "the watched socket's callback")
        assert calls == [Ping(3)]
    finally:
        client.close(0)
        other.close(0)


def test_readable_names_the_links_with_input_and_receive_waiting_takes_it_all(router):
    transport, peer, address = router
    links = [DealerLink(transport, address, name) for name in (b"a", b"b")]
    for link in links:
        link.open()
        link.send(Ping(0))
    for _ in links:
        identity_of_first(peer)
    assert readable(links, 0.01) == []
    send(peer, Ping(1), identity=b"b")
    send(peer, Ping(2), identity=b"b")
    got = []
    while len(got) < 2:  # the second may still be on its way when the first is read
        ready = readable(links, 5)
        assert ready == [links[1]]
        got.extend(links[1].receive_waiting())
    assert got == [Ping(1), Ping(2)]
    for link in links:
        link.close()


def test_every_is_due_once_per_interval_and_at_once_first():
    every = Every(1.0)
    assert every.due(100.0)
    assert not every.due(100.5)
    assert every.due(101.0)
    every.interval_s = 3.0  # from the next time it comes
    assert not every.due(101.9)
    assert every.due(102.0)
    assert not every.due(104.9) and every.due(105.0)
    every.make_due()
    assert every.due(105.1)


def test_backoff_doubles_while_failing_caps_and_resets_after_success():
    backoff = Backoff(0.25, 8.0, uniform=lambda low, high: 1.0)
    assert [backoff.next_wait(connected=False) for _ in range(7)] == \
        [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.next_wait(connected=True) == 0.25
    assert backoff.next_wait(connected=False) == 0.5
    jittered = Backoff(1.0, 8.0)
    assert all(0.5 <= jittered.next_wait(connected=True) <= 1.5 for _ in range(50))
