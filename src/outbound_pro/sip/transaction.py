"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state), sans-I/O.

Modelled on h11: each transaction is an explicit state machine.  It is driven by three kinds
of input, each stamped with the caller's clock value ``now`` (seconds, any monotonic origin):

* a message from the network (:meth:`receive`),
* a message from the transaction user (the initial request, or :meth:`send_response`),
* the passage of time (:meth:`timeout`) and transport failures (:meth:`transport_error`),

and answers with a list of actions: bytes to transmit to an opaque *target*, events for the TU
(:class:`RequestReceived`, :class:`ResponseReceived`, :class:`TimedOut`, ...), timer starts and
stops with absolute deadlines, and :class:`Terminated`.  Nothing here reads a clock, opens a
socket or schedules a callback.

:class:`TransactionLayer` owns all live transactions: it matches incoming messages to them
(§17.1.3, §17.2.3, including RFC 2543 matching for branches without the magic cookie), matches
CANCEL to the INVITE it cancels (§9.2), turns timer actions into one deadline
(:meth:`TransactionLayer.next_deadline`) so the asyncio adapter needs a single timer, and
forgets a transaction the moment it terminates.  A transaction that only waits out Timer D,
I, J or K is kept as a record of the bytes it resends (:class:`Completed`), not as an object.

Targets are opaque: for a client transaction, whatever the TU resolved the next hop to; for a
server transaction, whatever the transport passed as the request's source (its connection, or
its address).  Routing a response by Via (§18.2.2, RFC 3581) is the transport's job, helped
by :meth:`outbound_pro.sip.headers.Via.response_address`.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum

from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.message import Request, Response, build_ack_for_non2xx, make_response
from outbound_pro.sip.timers import Timer, TimerConfig
from outbound_pro.sip.validate import validate_response

Target = Hashable
TransactionKey = tuple[str, ...]


class State(StrEnum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class TransactionStateError(Exception):
    """The TU asked for something the transaction's state forbids (a bug in the TU)."""


# ------------------------------------------------------------------------------ actions
# Plain slotted dataclasses, not frozen ones: several are made per message, and a frozen
# dataclass's __init__ (object.__setattr__ per field) cost three times as much.  Nothing
# changes an action once made.


@dataclass(slots=True)
class Transmit:
    """Send *data* (the serialised *message*) to *target*.

    *message* is None when a completed transaction resends what it sent before: by then the
    layer keeps only the bytes (see :class:`Completed`).  Where a response goes is decided by
    its target (the request's source), never by reading the message again.
    """

    message: Request | Response | None
    data: bytes
    target: Target


@dataclass(slots=True)
class StartTimer:
    timer: Timer
    deadline: float


@dataclass(slots=True)
class StopTimer:
    timer: Timer


@dataclass(slots=True)
class Completed:
    """The transaction entered a state that only absorbs retransmissions until *deadline*.

    Emitted instead of starting Timer D, I, J or K on an unreliable transport.  Those states
    do one fixed thing per retransmission (resend *resend*, the last response or the ACK, or
    nothing), so the layer replaces the transaction by a two-field record and expires it with
    one FIFO sweep per timer: the durations are constants, so records expire in the order they
    were made.  Thousands of transactions waiting out Timer J then cost a tuple each instead
    of the request, its parsed headers and a timer, which the cycle collector would walk.
    """

    timer: Timer
    deadline: float
    resend: bytes | None


@dataclass(slots=True)
class RequestReceived:
    """A new request for the TU.  *transaction* is None for an ACK that matched no server
    transaction (the ACK for a 2xx, which belongs to the dialog).  For a CANCEL, *cancels* is
    the INVITE server transaction it matches (§9.2).  When that transaction is past its final
    response and ACK and kept only as a record (Confirmed, Timer I), *cancels* is None and
    *cancels_finished* True: it still exists, so the TU answers 200 with nothing left to
    cancel.  Neither: no such INVITE, the TU answers 481."""

    request: Request
    transaction: ServerTransaction | None
    cancels: ServerTransaction | None = None
    cancels_finished: bool = False


@dataclass(slots=True)
class ResponseReceived:
    """A response for the TU.  ``local`` responses were generated here (§8.1.3.1): 408 when
    Timer B/F fires, 503 on a transport error.  *transaction* is None for a 2xx to an INVITE
    whose transaction is already gone (a late or forked 2xx; the TU must ACK it)."""

    response: Response
    transaction: ClientTransaction | None
    local: bool = False


@dataclass(slots=True)
class TimedOut:
    """A server transaction gave up: Timer H fired with no ACK for a non-2xx final response."""

    transaction: ServerTransaction
    timer: Timer


@dataclass(slots=True)
class TransportFailed:
    transaction: ServerTransaction


@dataclass(slots=True)
class Terminated:
    transaction: Transaction


@dataclass(slots=True)
class Discarded:
    """An incoming message the layer would not act on, and why (for logs and counters)."""

    message: Request | Response
    reason: str


Action = (
    Transmit
    | Completed
    | StartTimer
    | StopTimer
    | RequestReceived
    | ResponseReceived
    | TimedOut
    | TransportFailed
    | Terminated
    | Discarded
)


# ------------------------------------------------------------------------------ keys


def client_key(message: Request | Response) -> TransactionKey:
    """§17.1.3: a response matches the client transaction whose request had the same top Via
    branch and CSeq method.  Raises :class:`SipParseError` when either is unreadable."""
    branch = message.top_via.branch or ""
    return ("c", branch, message.cseq[1])


def server_key(request: Request, method: str | None = None) -> TransactionKey:
    """§17.2.3: branch + sent-by + method (ACK counts as INVITE); RFC 2543 fallback otherwise.

    The fallback keys on Request-URI, From tag, Call-ID, CSeq number and the top Via as a
    whole.  The To tag is left out because an ACK carries the tag of our response while its
    INVITE did not; the other fields still tie it to one request.  *method* overrides the
    method (CANCEL matching uses "INVITE").
    """
    via = request.top_via
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    if via.is_rfc3261_branch:
        return ("s", via.branch or "", via.sent_by.lower(), method)
    return (
        "s2543",
        request.uri_text,
        request.from_tag or "",
        request.call_id,
        str(request.cseq[0]),
        method,
        via.sent_by.lower(),
        via.branch or "",
    )


# ------------------------------------------------------------------------------ transactions


class Transaction(ABC):
    """State and timers shared by all four kinds of transaction."""

    __slots__ = ("config", "key", "reliable", "request", "state", "target", "timers")

    def __init__(
        self,
        request: Request,
        key: TransactionKey,
        target: Target,
        *,
        reliable: bool,
        config: TimerConfig,
        state: State,
    ) -> None:
        self.request = request
        self.key = key
        self.target = target
        self.reliable = reliable
        self.config = config
        self.state = state
        self.timers: dict[Timer, float] = {}

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    @property
    def deadline(self) -> float | None:
        """The earliest running timer's deadline, or None."""
        return min(self.timers.values()) if self.timers else None

    def _start(self, out: list[Action], timer: Timer, now: float, duration: float) -> None:
        deadline = now + duration
        self.timers[timer] = deadline
        out.append(StartTimer(timer, deadline))

    def _stop(self, out: list[Action], *timers: Timer) -> None:
        for timer in timers:
            if self.timers.pop(timer, None) is not None:
                out.append(StopTimer(timer))

    def _terminate(self, out: list[Action]) -> None:
        self._stop(out, *list(self.timers))
        self.state = State.TERMINATED
        out.append(Terminated(self))

    def _complete(self, out: list[Action], timer: Timer, now: float, resend: bytes | None) -> None:
        """Enter the absorbing state that *timer* (D, I, J or K) bounds: hand it to the layer
        as a :class:`Completed` record, or end at once when the timer is zero (reliable)."""
        duration = self.config.duration(timer, self.reliable)
        if duration <= 0:
            self._terminate(out)
        else:
            out.append(Completed(timer, now + duration, resend))

    def timeout(self, now: float) -> list[Action]:
        """Fire every timer due at *now*, earliest first."""
        out: list[Action] = []
        while self.timers:
            timer, deadline = min(self.timers.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self.timers[timer]
            self._fire(timer, now, out)
        return out

    @abstractmethod
    def _fire(self, timer: Timer, now: float, out: list[Action]) -> None:
        """React to *timer* having fired (it is already removed from ``timers``)."""

    @abstractmethod
    def transport_error(self, now: float) -> list[Action]:
        """The transport failed to deliver a message for this transaction (§17.1.4, §17.2.4)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state}>"


class ClientTransaction(Transaction):
    """§17.1.1 (INVITE) and §17.1.2 (non-INVITE) client transactions."""

    __slots__ = ("_ack", "_data", "_interval")

    def __init__(
        self, request: Request, target: Target, *, reliable: bool, config: TimerConfig
    ) -> None:
        if request.method == "ACK":
            raise ValueError("ACK is not sent in a client transaction")
        state = State.CALLING if request.method == "INVITE" else State.TRYING
        super().__init__(
            request,
            client_key(request),
            target,
            reliable=reliable,
            config=config,
            state=state,
        )
        self._data = request.to_bytes()
        self._ack: Transmit | None = None
        self._interval = config.t1

    def start(self, now: float) -> list[Action]:
        """Send the request and arm the retransmit and timeout timers."""
        out: list[Action] = [Transmit(self.request, self._data, self.target)]
        retransmit, give_up = (Timer.A, Timer.B) if self.is_invite else (Timer.E, Timer.F)
        if not self.reliable:
            self._start(out, retransmit, now, self.config.t1)
        self._start(out, give_up, now, self.config.duration(give_up, self.reliable))
        return out

    def receive(self, response: Response, now: float) -> list[Action]:
        out: list[Action] = []
        code = response.status
        state = self.state
        if self.is_invite:
            if state in (State.CALLING, State.PROCEEDING):
                self._stop(out, Timer.A, Timer.B)
                if code < 200:
                    self.state = State.PROCEEDING
                    out.append(ResponseReceived(response, self))
                elif code < 300:
                    self.state = State.ACCEPTED
                    self._start(out, Timer.M, now, self.config.duration(Timer.M, self.reliable))
                    out.append(ResponseReceived(response, self))
                else:
                    self.state = State.COMPLETED
                    ack = build_ack_for_non2xx(self.request, response)
                    self._ack = Transmit(ack, ack.to_bytes(), self.target)
                    out.append(self._ack)
                    out.append(ResponseReceived(response, self))
                    self._complete(out, Timer.D, now, self._ack.data)
            elif state is State.COMPLETED and code >= 300 and self._ack is not None:
                out.append(self._ack)  # the ACK got lost: resend it, TU already knows
            elif state is State.ACCEPTED and 200 <= code < 300:
                out.append(ResponseReceived(response, self))  # RFC 6026 §7.2
        elif state in (State.TRYING, State.PROCEEDING):
            if code < 200:
                self.state = State.PROCEEDING
                out.append(ResponseReceived(response, self))
            else:
                self._stop(out, Timer.E, Timer.F)
                self.state = State.COMPLETED
                out.append(ResponseReceived(response, self))
                self._complete(out, Timer.K, now, None)
        return out

    def _fire(self, timer: Timer, now: float, out: list[Action]) -> None:
        if timer is Timer.A and self.state is State.CALLING:
            out.append(Transmit(self.request, self._data, self.target))
            self._interval *= 2
            self._start(out, Timer.A, now, self._interval)
        elif timer is Timer.E and self.state in (State.TRYING, State.PROCEEDING):
            out.append(Transmit(self.request, self._data, self.target))
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, self.config.t2)
            else:
                self._interval = self.config.t2
            self._start(out, Timer.E, now, self._interval)
        elif timer in (Timer.B, Timer.F):
            out.append(ResponseReceived(self._local(408), self, local=True))
            self._terminate(out)
        elif timer is Timer.M:
            self._terminate(out)

    def transport_error(self, now: float) -> list[Action]:
        """§17.1.4: the transport could not send; the TU sees a 503 (§8.1.3.1)."""
        out: list[Action] = []
        if self.state is State.TERMINATED:
            return out
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            out.append(ResponseReceived(self._local(503), self, local=True))
        self._terminate(out)
        return out

    def _local(self, status: int) -> Response:
        return make_response(self.request, status)


class ServerTransaction(Transaction):
    """§17.2.1 (INVITE) and §17.2.2 (non-INVITE) server transactions."""

    __slots__ = ("_interval", "last_response")

    def __init__(
        self,
        request: Request,
        source: Target,
        *,
        reliable: bool,
        config: TimerConfig,
        key: TransactionKey | None = None,
    ) -> None:
        state = State.PROCEEDING if request.method == "INVITE" else State.TRYING
        super().__init__(
            request,
            key if key is not None else server_key(request),
            source,
            reliable=reliable,
            config=config,
            state=state,
        )
        self.last_response: Transmit | None = None
        self._interval = config.t1

    def start(self, now: float, *, send_trying: bool = True) -> list[Action]:
        """Hand the request to the TU; an INVITE gets an immediate 100 Trying (§17.2.1)
        unless *send_trying* is False, so upstream retransmissions stop at once."""
        out: list[Action] = []
        if self.is_invite and send_trying:
            self._send(out, make_response(self.request, 100))
        out.append(RequestReceived(self.request, self))
        return out

    def _send(self, out: list[Action], response: Response) -> Transmit:
        sent = self.last_response = Transmit(response, response.to_bytes(), self.target)
        out.append(sent)
        return sent

    def receive(self, request: Request, now: float) -> list[Action]:
        """A retransmission of our request, or (INVITE) its ACK."""
        out: list[Action] = []
        state = self.state
        if request.method == "ACK":
            if not self.is_invite:
                return out
            if state is State.COMPLETED:
                self._stop(out, Timer.G, Timer.H)
                self.state = State.CONFIRMED
                self._complete(out, Timer.I, now, None)
            elif state is State.ACCEPTED:
                out.append(RequestReceived(request, None))  # RFC 6026: ACK for 2xx to TU
            return out
        if state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            out.append(self.last_response)
        # Trying (non-INVITE), Confirmed and Accepted absorb retransmissions silently
        return out

    def send_response(self, response: Response, now: float) -> list[Action]:
        """The TU's response.  Raises :class:`TransactionStateError` if a final response was
        already sent, except a 2xx to an INVITE, which the TU retransmits itself (§13.3.1.4)
        and which is sent even after the transaction ended."""
        out: list[Action] = []
        code = response.status
        state = self.state
        if self.is_invite and 200 <= code < 300 and state in (State.ACCEPTED, State.TERMINATED):
            out.append(Transmit(response, response.to_bytes(), self.target))
            return out
        if state not in (State.TRYING, State.PROCEEDING):
            raise TransactionStateError(f"cannot send {code} in state {state}")
        sent = self._send(out, response)
        if code < 200:
            self.state = State.PROCEEDING
        elif not self.is_invite:
            self.state = State.COMPLETED
            self._complete(out, Timer.J, now, sent.data)
        elif code < 300:
            self.state = State.ACCEPTED
            self._start(out, Timer.L, now, self.config.duration(Timer.L, self.reliable))
        else:
            self.state = State.COMPLETED
            if not self.reliable:
                self._start(out, Timer.G, now, self.config.t1)
            self._start(out, Timer.H, now, self.config.duration(Timer.H, self.reliable))
        return out

    def _fire(self, timer: Timer, now: float, out: list[Action]) -> None:
        if timer is Timer.G and self.state is State.COMPLETED:
            if self.last_response is not None:
                out.append(self.last_response)
            self._interval = min(2 * self._interval, self.config.t2)
            self._start(out, Timer.G, now, self._interval)
        elif timer is Timer.H:
            out.append(TimedOut(self, Timer.H))
            self._terminate(out)
        elif timer is Timer.L:
            self._terminate(out)

    def transport_error(self, now: float) -> list[Action]:
        out: list[Action] = []
        if self.state is State.TERMINATED:
            return out
        out.append(TransportFailed(self))
        self._terminate(out)
        return out


# ------------------------------------------------------------------------------ the layer


_Record = tuple[bytes | None, Target]
"""A transaction that only absorbs retransmissions (see :class:`Completed`): what to resend
(None: nothing) and where."""
_ABSORBING = (Timer.D, Timer.I, Timer.J, Timer.K)


class TransactionLayer:
    """All live transactions of one SIP endpoint, and the single timer they need.

    The adapter feeds it parsed messages (requests already passed
    :func:`~outbound_pro.sip.validate.validate_request`), TU sends, and the clock, and carries
    out what comes back: :class:`Transmit` goes to the transport, TU events go to the TU.
    Timer actions are absorbed here; schedule one callback at :meth:`next_deadline` and call
    :meth:`timeout` when it fires.

    A transaction that reaches a state which only absorbs retransmissions (:class:`Completed`)
    is replaced by a record that keeps the bytes to resend and the target, and expires from a
    FIFO per timer; ``now`` is expected not to go backwards, which a monotonic clock ensures.
    """

    def __init__(self, config: TimerConfig | None = None, *, send_trying: bool = True) -> None:
        self.config = config or TimerConfig()
        self.send_trying = send_trying
        self._transactions: dict[TransactionKey, Transaction | _Record] = {}
        self._heap: list[tuple[float, int, TransactionKey, Timer]] = []
        self._seq = itertools.count()
        self._expiring: dict[Timer, deque[tuple[float, TransactionKey, _Record]]] = {
            timer: deque() for timer in _ABSORBING
        }

    def __len__(self) -> int:
        """Live transactions, those only absorbing retransmissions included."""
        return len(self._transactions)

    def get(self, key: TransactionKey) -> Transaction | None:
        txn = self._transactions.get(key)
        return txn if isinstance(txn, Transaction) else None

    # -- inputs

    def send_request(
        self, request: Request, target: Target, now: float, *, reliable: bool = False
    ) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction for *request* (which must carry its top Via)."""
        txn = ClientTransaction(request, target, reliable=reliable, config=self.config)
        if txn.key in self._transactions:
            raise ValueError("a client transaction with this branch and method exists")
        self._transactions[txn.key] = txn
        return txn, self._absorb(txn, txn.start(now))

    def send_response(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> list[Action]:
        return self._absorb(transaction, transaction.send_response(response, now))

    def transport_error(self, transaction: Transaction, now: float) -> list[Action]:
        return self._absorb(transaction, transaction.transport_error(now))

    def forget(self, transaction: ServerTransaction) -> None:
        """Drop a server transaction the TU chose not to answer (a blocked source).

        Without this a request answered by silence would keep its transaction forever: a
        non-INVITE server transaction has no timer until it sends a final response.
        """
        if self._transactions.get(transaction.key) is transaction:
            del self._transactions[transaction.key]
            transaction.state = State.TERMINATED

    def receive(
        self, message: Request | Response, source: Target, now: float, *, reliable: bool = False
    ) -> list[Action]:
        if type(message) is Response:  # not isinstance: Message is an ABC, which is slower
            return self._receive_response(message, now)
        return self._receive_request(message, source, now, reliable)

    def timeout(self, now: float) -> list[Action]:
        out: list[Action] = []
        heap = self._heap
        transactions = self._transactions
        while heap and heap[0][0] <= now:
            deadline, _, key, timer = heapq.heappop(heap)
            txn = transactions.get(key)
            if isinstance(txn, Transaction) and txn.timers.get(timer) == deadline:
                out += self._absorb(txn, txn.timeout(now))
        for fifo in self._expiring.values():
            while fifo and fifo[0][0] <= now:
                _, key, record = fifo.popleft()
                if transactions.get(key) is record:
                    del transactions[key]
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        transactions = self._transactions
        earliest: float | None = None
        while heap:
            deadline, _, key, timer = heap[0]
            txn = transactions.get(key)
            if isinstance(txn, Transaction) and txn.timers.get(timer) == deadline:
                earliest = deadline
                break
            heapq.heappop(heap)
        for fifo in self._expiring.values():
            if fifo and (earliest is None or fifo[0][0] < earliest):
                earliest = fifo[0][0]
        return earliest

    # -- internals

    def _receive_response(self, response: Response, now: float) -> list[Action]:
        problem = validate_response(response)
        if problem is not None:
            return [Discarded(response, problem)]
        txn = self._transactions.get(client_key(response))
        if isinstance(txn, ClientTransaction):
            return self._absorb(txn, txn.receive(response, now))
        if type(txn) is tuple:
            # Completed (Timer D or K): a retransmitted non-2xx final gets the ACK again.
            ack, target = txn
            return [] if ack is None or response.status < 300 else [Transmit(None, ack, target)]
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:
            return [ResponseReceived(response, None)]
        return [Discarded(response, "no matching client transaction")]

    def _receive_request(
        self, request: Request, source: Target, now: float, reliable: bool
    ) -> list[Action]:
        try:
            key = server_key(request)
        except SipParseError as err:
            return [Discarded(request, err.reason)]
        txn = self._transactions.get(key)
        if isinstance(txn, ServerTransaction):
            return self._absorb(txn, txn.receive(request, now))
        if type(txn) is tuple:
            # Completed (Timer J) resends its final response; Confirmed (Timer I) absorbs.
            last, target = txn
            if last is None or request.method == "ACK":
                return []
            return [Transmit(None, last, target)]
        if request.method == "ACK":
            return [RequestReceived(request, None)]
        txn = ServerTransaction(request, source, reliable=reliable, config=self.config, key=key)
        self._transactions[key] = txn
        actions = txn.start(now, send_trying=self.send_trying)
        if request.method == "CANCEL":
            target = self._transactions.get(server_key(request, "INVITE"))
            cancels = target if isinstance(target, ServerTransaction) else None
            finished = type(target) is tuple
            actions = [
                RequestReceived(a.request, a.transaction, cancels, finished)
                if isinstance(a, RequestReceived)
                else a
                for a in actions
            ]
        return self._absorb(txn, actions)

    def _absorb(self, txn: Transaction, actions: list[Action]) -> list[Action]:
        """Turn *txn*'s timer actions into heap entries, replace it by a record once it only
        absorbs retransmissions, and forget it once terminated.

        Stopped timers are not removed from the heap: an entry is live only while the
        transaction under its key still has that timer at that deadline, which is checked
        when it surfaces.  Entries hold the key, not the transaction, so a finished
        transaction is freed at once rather than when its last timer entry surfaces.
        """
        out: list[Action] = []
        for action in actions:
            if isinstance(action, StartTimer):
                entry = (action.deadline, next(self._seq), txn.key, action.timer)
                heapq.heappush(self._heap, entry)
            elif isinstance(action, Completed):
                if self._transactions.get(txn.key) is txn:
                    record = (action.resend, txn.target)
                    self._transactions[txn.key] = record
                    self._expiring[action.timer].append((action.deadline, txn.key, record))
            elif not isinstance(action, StopTimer):
                if isinstance(action, Terminated) and self._transactions.get(txn.key) is txn:
                    del self._transactions[txn.key]
                out.append(action)
        return out
