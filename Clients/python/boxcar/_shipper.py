"""The background thread that ships metrics and events over ``boxcar.v1.Agent/Log``.

The training loop only appends to a bounded buffer (``put``); this thread turns what is buffered
into batches of packed columns, keeps up to ``WINDOW`` batches in flight on one stream, and
counts a batch as delivered when the agent acknowledges it (after its commit). When the stream
breaks (the agent stopped or restarted) it reconnects with backoff and sends every batch that was
not acknowledged again, in order: nothing acknowledged is lost, and a batch the agent committed
but could not acknowledge before it died may be stored twice (at-least-once).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

import grpc

from ._batches import BATCH_POINTS, Item, build_batch
from ._errors import BoxcarError, error_from_rpc, is_refusal, status
from ._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger("boxcar")

WINDOW = 32  # batches in flight per stream (the agent reads at most 64 ahead)
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0

class Refused(Exception):
    """The agent refused a batch (bad input, a limit): it is dropped, the rest goes on. ``error``
    is what strict mode raises."""

    def __init__(self, error: BoxcarError):
        super().__init__(str(error))
        self.error = error


class Shipper:
    def __init__(
        self,
        connect: Callable[[], Any],
        before_stream: Callable[[], None],
        max_buffered: int,
        block_when_full: bool,
    ):
        self._connect = connect  # → a fresh channel to the agent, ready
        self._before_stream = before_stream  # creates experiments the agent missed; may raise
        self._max = max_buffered
        self._block = block_when_full
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the shipper waits for work
        self._space = threading.Condition(self._lock)  # producers wait for room (block policy)
        self._progress = threading.Condition(self._lock)  # flush waits for acknowledgements
        self._items: Deque[Item] = collections.deque()
        self._buffered = 0  # records in _items
        self._enqueued = 0  # records ever accepted
        self._settled = 0  # records acknowledged, or dropped after a refusal
        self._idle = False
        self._closing = False
        self.dropped = 0  # records dropped because the buffer was full
        self.refused = 0  # records of batches the agent refused
        self.error: Optional[BaseException] = None  # the first refusal or outage (strict mode raises it)
        self._warned_full = False
        self._thread = threading.Thread(target=self._run, name="boxcar-shipper", daemon=True)
        self._thread.start()

    # MARK: the caller's side

    def put(self, item: Item) -> None:
        """Buffers one item (points of one step, an event, a metadata update), or drops it and
        counts its records when the buffer is full and the policy is to drop."""
        records = item.records
        with self._lock:
            if self._buffered + records > self._max and self._buffered > 0:
                if not self._block:
                    self.dropped += records
                    if not self._warned_full:
                        self._warned_full = True
                        log.warning("boxcar: the buffer is full (%d records); dropping until it drains", self._max)
                    return
                while self._buffered + records > self._max and self._buffered > 0 and not self._closing:
                    self._space.wait()
            self._items.append(item)
            self._buffered += records
            self._enqueued += records
            if self._idle:
                self._wake.notify()

    def flush(self, timeout: Optional[float]) -> bool:
        """Waits until everything buffered before the call is acknowledged; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._enqueued
            self._wake.notify()
            while self._settled < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining if remaining is None else min(remaining, 1.0))
            return True

    def close(self, timeout: Optional[float]) -> bool:
        flushed = self.flush(timeout)
        with self._lock:
            self._closing = True
            self._wake.notify()
            self._space.notify_all()
        self._thread.join(timeout=1.0)
        return flushed

    @property
    def pending(self) -> int:
        with self._lock:
            return self._enqueued - self._settled  # what was dropped was never enqueued

    # MARK: the shipper's side

    def _run(self) -> None:
        link = _Link()
        while True:
            work = self._wait_for_work(link)
            if work is None:
                break
            acks, failure = work
            link.count_acknowledged(acks, self._settle)
            if failure is not None:
                self._lost_stream(link, failure)
            if link.stream is None and not self._connect_and_resend(link):
                if self._closing:
                    break
                continue
            self._fill_window(link)
        link.close()
        with self._lock:
            self._progress.notify_all()

    def _wait_for_work(self, link: "_Link") -> Optional[Tuple[List[agent_pb2.LogAck], Optional[BaseException]]]:
        """Sleeps until there is something to do: items to send (with room in the window),
        acknowledgements to count, a broken stream, or the end (None)."""
        with self._lock:
            while True:
                stream = link.stream
                if stream is not None and (stream.acks or stream.broken is not None):
                    break
                if self._items and (stream is None or len(link.in_flight) < WINDOW):
                    break
                if stream is None and link.in_flight:
                    break
                if self._closing and not link.in_flight and not self._items:
                    return None
                self._idle = True
                self._wake.wait()
                self._idle = False
            # Both under the lock: acknowledgements that came before the break are counted.
            if link.stream is None:
                return [], None
            return link.stream.take_acks(), link.stream.broken

    def _lost_stream(self, link: "_Link", failure: BaseException) -> None:
        link.drop_stream()
        if isinstance(failure, Refused) and link.in_flight:
            # The oldest unacknowledged batch was refused; those after it were not read.
            _, records = link.in_flight.popleft()
            self._settle(records, refused=True, error=failure)
        elif link.down_since is None:
            link.down_since = time.monotonic()
            log.warning("boxcar: lost the agent (%s); buffering and reconnecting", _describe(failure))
            with self._lock:
                self.error = self.error or failure

    def _connect_and_resend(self, link: "_Link") -> bool:
        """Opens a stream and sends every batch not acknowledged again, in order; on failure waits
        out the backoff (or until closing) and returns False."""
        try:
            self._before_stream()
            link.stream = _Stream(self._connect(), self._lock, self._wake)
            for batch, _ in link.in_flight:
                link.stream.send(batch)
            if link.down_since is not None:
                log.warning("boxcar: reached the agent after %.1f s; resent %d batches",
                            time.monotonic() - link.down_since, len(link.in_flight))
                link.down_since = None
            link.backoff = BACKOFF_START_S
            return True
        except Exception as error:  # noqa: BLE001 - any failure to reach the agent is retried
            link.drop_stream()
            if link.down_since is None:
                link.down_since = time.monotonic()
                log.warning("boxcar: cannot reach the agent (%s); buffering and retrying", _describe(error))
            with self._lock:
                self.error = self.error or error
                if not self._closing:
                    self._wake.wait(link.backoff)
            link.backoff = min(link.backoff * 2, BACKOFF_MAX_S)
            return False

    def _fill_window(self, link: "_Link") -> None:
        while len(link.in_flight) < WINDOW:
            items = self._take()
            if not items:
                return
            try:
                batch, records, rest = build_batch(items, link.next_id)
            except Exception as error:  # noqa: BLE001 - one bad item must not stop the shipper
                # The caller checks what it can; whatever protobuf still refuses is dropped and
                # counted, and the rest goes on.
                self._settle(sum(item.records for item in items), refused=True, error=error)
                continue
            if rest:
                with self._lock:
                    self._items.extendleft(reversed(rest))
                    self._buffered += sum(item.records for item in rest)
            link.next_id += 1
            link.in_flight.append((batch, records))
            link.stream.send(batch)

    def _take(self) -> List[Item]:
        with self._lock:
            taken: List[Item] = []
            points = 0
            while self._items and points < BATCH_POINTS:
                item = self._items.popleft()
                count = item.records
                points += count
                self._buffered -= count
                taken.append(item)
            if taken:
                self._space.notify_all()
            return taken

    def _settle(self, records: int, refused: bool = False, error: Optional[BaseException] = None) -> None:
        with self._lock:
            self._settled += records
            if refused:
                self.refused += records
                self.error = self.error or error
                log.warning("boxcar: the agent refused a batch of %d records: %s", records, error)
            self._progress.notify_all()


class _Link:
    """The shipper thread's own state: its stream, the batches sent and not acknowledged (oldest
    first), and how long to wait before the next try while the agent is away."""

    def __init__(self) -> None:
        self.stream: Optional[_Stream] = None
        self.in_flight: Deque[Tuple[agent_pb2.LogBatch, int]] = collections.deque()
        self.next_id = 1
        self.backoff = BACKOFF_START_S
        self.down_since: Optional[float] = None

    def count_acknowledged(self, acks: List[agent_pb2.LogAck], settle: Callable[[int], None]) -> None:
        # Acknowledgements come in order: each settles the oldest batch in flight.
        for ack in acks:
            if self.in_flight and self.in_flight[0][0].batch_id == ack.batch_id:
                _, records = self.in_flight.popleft()
                settle(records)

    def drop_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def close(self) -> None:
        self.drop_stream()


class _Stream:
    """One Log call. Batches go in through a queue that gRPC's thread reads; a reader thread
    collects the acknowledgements (or the failure) under the shipper's lock and wakes it."""

    _END = object()

    def __init__(self, channel: grpc.Channel, lock: threading.Lock, wake: threading.Condition):
        self._channel = channel
        self._lock = lock
        self._wake = wake
        self._requests: "queue.Queue[Any]" = queue.Queue()
        self.acks: List[agent_pb2.LogAck] = []  # guarded by the shipper's lock
        self.broken: Optional[BaseException] = None
        self._call = agent_pb2_grpc.AgentStub(channel).Log(self._generate())
        self._reader = threading.Thread(target=self._read, name="boxcar-acks", daemon=True)
        self._reader.start()

    def _generate(self):
        while True:
            batch = self._requests.get()
            if batch is self._END:
                return
            yield batch

    def _read(self) -> None:
        failure: BaseException
        try:
            for ack in self._call:
                with self._lock:
                    self.acks.append(ack)
                    self._wake.notify()
            failure = ConnectionError("the agent ended the stream")
        except grpc.RpcError as error:
            failure = Refused(error_from_rpc(error)) if is_refusal(error) else error
        except Exception as error:  # noqa: BLE001
            failure = error
        with self._lock:
            self.broken = failure
            self._wake.notify()

    def send(self, batch: agent_pb2.LogBatch) -> None:
        self._requests.put(batch)

    def take_acks(self) -> List[agent_pb2.LogAck]:
        """The acknowledgements received so far (call with the shipper's lock held)."""
        out, self.acks = self.acks, []
        return out

    def close(self) -> None:
        self._requests.put(self._END)
        self._call.cancel()
        self._channel.close()  # an open channel can hold the interpreter's exit


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError):
        code, details = status(error)
        if code is not None:
            return f"{code.name}: {details}"
    return str(error)
