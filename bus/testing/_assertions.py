"""Assertions on a `Recorder`'s record; each failure shows the shortest excerpt that breaks it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from bus import DeadLetter
from bus.testing._recorder import Recorder
from bus.testing._records import SENDER_HEADER, SEQ_HEADER, Delivery, Entry, Notice, Send


class DeliveryAssertionError(AssertionError):
    """A record broke a delivery guarantee; ``excerpt`` holds the entries that show it."""

    def __init__(self, guarantee: str, problem: str, excerpt: Sequence[Entry]) -> None:
        """``guarantee`` broken, ``problem`` in one sentence, ``excerpt`` the entries proving it."""
        self.guarantee = guarantee
        self.problem = problem
        self.excerpt = tuple(sorted(excerpt, key=lambda e: e.index))
        lines = [f"{guarantee}: {problem}"]
        previous = None
        for entry in self.excerpt:
            if previous is not None and entry.index > previous + 1:
                lines.append("  ...")
            lines.append(f"  {entry.describe()}")
            previous = entry.index
        super().__init__("\n".join(lines))


HandlerRef = str | Callable[..., object] | None


def _deliveries(recorder: Recorder, handler: HandlerRef) -> dict[str, list[Delivery]]:
    by_handler: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in recorder.deliveries(handler):
        by_handler[delivery.handler].append(delivery)
    return by_handler


def assert_fifo_per_sender(recorder: Recorder, handler: HandlerRef = None) -> None:
    """Each handler gets each sender's messages in the order sent (a retry stays in place).

    Per handler and sender, the attempts in start order must go through the sender's messages in
    increasing send order, the attempts of one message next to each other. Messages not sent
    through a recorder's sender are not checked.
    """
    for name, deliveries in _deliveries(recorder, handler).items():
        last: dict[str, Delivery] = {}
        for delivery in deliveries:
            if delivery.seq < 0:
                continue
            before = last.get(delivery.sender)
            if before is not None and delivery.seq < before.seq:
                problem = (
                    f"{_short(name)} got {delivery.sender}[{delivery.seq}] after "
                    f"{delivery.sender}[{before.seq}], which {delivery.sender} sent later"
                )
                raise DeliveryAssertionError("per-sender FIFO", problem, [before, delivery])
            last[delivery.sender] = delivery


def _expected(recorder: Recorder, handler: HandlerRef) -> list[tuple[Send, str]]:
    """(send, handler) pairs that must be handled: what each send routes to, a publish only up to
    (not including) the handler that raised to its caller."""
    names = None if handler is None else {recorder.handler_name(handler)}
    routed = recorder.handlers
    by_message = _by_message(recorder)
    pairs: list[tuple[Send, str]] = []
    for send in recorder.sends():
        if send.error is not None and send.via == "emit":
            continue  # refused (a full mailbox): nothing was queued
        for registered in routed:
            if not registered.spec.accepts(type(send.event)):
                continue
            if send.via == "publish":
                got = by_message.get((send.sender, send.seq, registered.name), [])
                if any(d.failed for d in got) or (send.error is not None and not got):
                    break  # this handler raised to the publisher, or the publish stopped earlier
            if names is None or registered.name in names:
                pairs.append((send, registered.name))
    return pairs


def _by_message(recorder: Recorder) -> dict[tuple[str, int, str], list[Delivery]]:
    got: dict[tuple[str, int, str], list[Delivery]] = defaultdict(list)
    for delivery in recorder.deliveries():
        if delivery.seq >= 0:
            got[delivery.sender, delivery.seq, delivery.handler].append(delivery)
    return got


def _dead_lettered(recorder: Recorder) -> dict[tuple[str, str], Notice]:
    return {(n.handler, n.message_id): n for n in recorder.notices("dead_letter")}


def _dead_lettered_sends(recorder: Recorder) -> dict[tuple[str, str, int], Notice]:
    """Dead letters by (handler, sender, seq): also those of messages never delivered (dropped by
    a full mailbox, or queued for a handler that stopped for good)."""
    found: dict[tuple[str, str, int], Notice] = {}
    for notice in recorder.notices("dead_letter"):
        letter = notice.event
        headers = letter.context.headers if isinstance(letter, DeadLetter) else {}
        sender, seq = headers.get(SENDER_HEADER), headers.get(SEQ_HEADER)
        if sender and seq is not None and seq.isdigit():
            found[notice.handler, sender, int(seq)] = notice
    return found


def _check_counts(
    recorder: Recorder,
    handler: HandlerRef,
    guarantee: str,
    allow_dead_letters: bool,
    exactly: bool,
) -> None:
    by_message = _by_message(recorder)
    dead = _dead_lettered_sends(recorder)
    for send, name in _expected(recorder, handler):
        got = by_message.get((send.sender, send.seq, name), [])
        ok = [d for d in got if d.outcome == "ok"]
        letter = dead.get((name, send.sender, send.seq))
        if letter is not None and allow_dead_letters and not ok:
            continue
        if not ok:
            why = "was dead-lettered" if letter is not None else "was never handled successfully"
            problem = f"{send.sender}[{send.seq}] {why} by {_short(name)}"
            raise DeliveryAssertionError(
                guarantee, problem, [send, *got, *([letter] if letter else [])]
            )
        if exactly and len(ok) > 1:
            problem = f"{_short(name)} handled {send.sender}[{send.seq}] {len(ok)} times"
            raise DeliveryAssertionError(guarantee, problem, [send, *ok[:2]])
    if exactly:
        # messages not sent through a recorder's sender: at least never handled twice
        for name, deliveries in _deliveries(recorder, handler).items():
            first_ok: dict[str, Delivery] = {}
            for delivery in deliveries:
                if delivery.seq >= 0 or delivery.outcome != "ok":
                    continue
                other = first_ok.setdefault(delivery.message_id, delivery)
                if other is not delivery:
                    problem = f"{_short(name)} handled message {delivery.message_id[-6:]} twice"
                    raise DeliveryAssertionError(guarantee, problem, [other, delivery])


def assert_exactly_once(
    recorder: Recorder, handler: HandlerRef = None, *, allow_dead_letters: bool = False
) -> None:
    """Every message sent to a handler was handled successfully exactly once by it.

    A publish counts for the handlers before the one that raised to the publisher. With
    ``allow_dead_letters``, a message that became a `DeadLetter` (never handled) is accepted.
    """
    _check_counts(recorder, handler, "exactly once", allow_dead_letters, exactly=True)


def assert_at_least_once(
    recorder: Recorder, handler: HandlerRef = None, *, allow_dead_letters: bool = False
) -> None:
    """Every message sent to a handler was handled successfully at least once by it."""
    _check_counts(recorder, handler, "at least once", allow_dead_letters, exactly=False)


def assert_publish_order(recorder: Recorder) -> None:
    """Each publish reached its handlers in registration order, stopping at the first that raised.

    Checked for publishes through a recorder's sender; one still under way, or refused by a
    handler's full mailbox (``MailboxFullError``), may have reached only the first of them.
    """
    by_message = _by_message(recorder)
    order = recorder.handlers
    for send in recorder.sends():
        if send.via != "publish":
            continue
        got = sorted(
            (d for h in order for d in by_message.get((send.sender, send.seq, h.name), [])),
            key=lambda d: d.index,
        )
        expected: list[str] = []
        for registered in order:
            if registered.spec.accepts(type(send.event)):
                expected.append(registered.name)
                if any(d.handler == registered.name and d.failed for d in got):
                    break
        actual = [d.handler for d in got]
        # a publish under way, or refused by the next handler's mailbox, reached a prefix
        prefix = actual == expected[: len(actual)]
        if actual == expected or (prefix and (not send.done or send.error is not None)):
            continue
        position = next(
            (i for i, (a, e) in enumerate(zip(actual, expected, strict=False)) if a != e),
            min(len(actual), len(expected)),
        )
        want = _short(expected[position]) if position < len(expected) else "no further handler"
        problem = (
            f"publish {send.sender}[{send.seq}] reached "
            f"[{', '.join(_short(a) for a in actual)}], expected "
            f"[{', '.join(_short(e) for e in expected)}]; handler {position + 1} should be {want}"
        )
        raise DeliveryAssertionError("publish order", problem, [send, *got[: position + 1]])


def assert_causal_order(recorder: Recorder, handler: HandlerRef = None) -> None:
    """A message caused by another (directly or not) is handled after its cause: its first
    delivery starts after one of the cause's, and a handler that gets both gets the cause first."""
    deliveries = recorder.deliveries()
    causes: dict[str, str] = {}
    first: dict[str, Delivery] = {}
    for delivery in deliveries:
        context = delivery.context
        if context.causation_id is not None:
            causes.setdefault(context.message_id, context.causation_id)
        first.setdefault(delivery.message_id, delivery)
    for name, own in _deliveries(recorder, handler).items():
        seen: dict[str, Delivery] = {}
        for delivery in own:
            seen.setdefault(delivery.message_id, delivery)
        for delivery in own:
            ancestor = causes.get(delivery.message_id)
            hops = 0
            while ancestor is not None and hops < len(causes):
                earlier = seen.get(ancestor)
                if earlier is not None and earlier.index > delivery.index:
                    problem = (
                        f"{_short(name)} got {delivery.event!r} before {earlier.event!r}, "
                        "which caused it"
                    )
                    raise DeliveryAssertionError("causal order", problem, [delivery, earlier])
                ancestor = causes.get(ancestor)
                hops += 1
    for delivery in deliveries:
        cause = causes.get(delivery.message_id)
        started = first.get(cause) if cause is not None else None
        if started is not None and started.index > delivery.index:
            problem = (
                f"message {delivery.message_id[-6:]} was delivered before its cause "
                f"{started.message_id[-6:]} was delivered anywhere"
            )
            raise DeliveryAssertionError("causal order", problem, [delivery, started])


def assert_failures_resolved(recorder: Recorder, handler: HandlerRef = None) -> None:
    """Every failed attempt at an emitted message is followed by a success of that handler on it
    or by a `DeadLetter` for it. Exempt: a failed publish (its error goes to the publisher) and a
    `DeadLetter` whose handler failed on every attempt (the bus drops it: a dead letter about a
    dead letter would loop)."""
    dead = _dead_lettered(recorder)
    for name, deliveries in _deliveries(recorder, handler).items():
        last_failure: dict[str, Delivery] = {}
        for delivery in deliveries:
            if delivery.via == "publish" or isinstance(delivery.event, DeadLetter):
                # a failed publish goes to the publisher; a failed DeadLetter is dropped by the
                # bus (a dead letter about a dead letter would loop)
                continue
            if delivery.failed:
                last_failure[delivery.message_id] = delivery
            elif delivery.outcome == "ok":
                last_failure.pop(delivery.message_id, None)
        for message_id, failure in last_failure.items():
            if (name, message_id) not in dead:
                problem = (
                    f"{_short(name)} failed on {failure.event!r} and neither handled it "
                    "afterwards nor dead-lettered it"
                )
                raise DeliveryAssertionError("failures resolved", problem, [failure])


def assert_nothing_after_stop(recorder: Recorder, handler: HandlerRef = None) -> None:
    """No delivery to a handler starts after its `HandlerStopped` notice."""
    names = None if handler is None else recorder.handler_name(handler)
    stopped: dict[str, Notice] = {}
    for entry in recorder.entries:
        if isinstance(entry, Notice) and entry.kind == "stopped":
            stopped.setdefault(entry.handler, entry)
        elif (
            isinstance(entry, Delivery)
            and entry.handler in stopped
            and names in (None, entry.handler)
        ):
            notice = stopped[entry.handler]
            problem = f"{_short(entry.handler)} got a delivery after it stopped"
            raise DeliveryAssertionError("nothing after stop", problem, [notice, entry])


def assert_delivery_guarantees(
    recorder: Recorder, *, allow_dead_letters: bool = False, exactly_once: bool = True
) -> None:
    """Every assertion above, for a record whose messages have all been processed (after
    `BusTerminal.drain`): FIFO per sender, publish order, causal order, failures resolved,
    nothing after a stop, and exactly once (or at least once when ``exactly_once`` is false)."""
    assert_fifo_per_sender(recorder)
    assert_publish_order(recorder)
    assert_causal_order(recorder)
    assert_failures_resolved(recorder)
    assert_nothing_after_stop(recorder)
    counts = assert_exactly_once if exactly_once else assert_at_least_once
    counts(recorder, allow_dead_letters=allow_dead_letters)


def _short(handler: str) -> str:
    return handler.rsplit(".", 1)[-1]
