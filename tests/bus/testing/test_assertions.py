"""Each assertion passes on records the bus produced and fails, with the shortest excerpt that
shows it, on a known-bad edit of them (mutation style); the causal-order assertion also catches a
real overtaking that ``publish`` allows."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from bus import Event, EventBus, HandlerStopped, MessageRegistry
from bus.testing import (
    Delivery,
    DeliveryAssertionError,
    Fault,
    InjectedFault,
    Notice,
    Recorder,
    assert_at_least_once,
    assert_causal_order,
    assert_delivery_guarantees,
    assert_exactly_once,
    assert_failures_resolved,
    assert_fifo_per_sender,
    assert_nothing_after_stop,
    assert_publish_order,
    run,
)
from bus.testing._records import Entry


class Placed(Event):
    order: int


class Shipped(Event):
    order: int


def record(
    setup: Callable[[MessageRegistry], None],
    script: Callable[[Recorder], object],
    faults: list[Fault] | None = None,
) -> Recorder:
    """Run ``script`` against handlers made by ``setup`` (trio, virtual time), drained."""
    registry = MessageRegistry()
    setup(registry)
    recorder = Recorder(registry, faults=faults or [])

    async def main() -> None:
        async with recorder.open() as terminal:
            await script(recorder)  # type: ignore[misc]
            await terminal.drain()

    run(main)
    return recorder


def one_handler(registry: MessageRegistry) -> None:
    @registry.register(retry_backoff=0.5)
    async def keep(placed: Placed) -> None:
        pass


def two_handlers(registry: MessageRegistry) -> None:
    @registry.register
    async def first(placed: Placed) -> None:
        pass

    @registry.register
    async def second(placed: Placed) -> None:
        pass


def causing(registry: MessageRegistry) -> None:
    @registry.register
    async def ship(placed: Placed, ctx: object, bus: EventBus) -> None:
        await bus.emit(Shipped(placed.order))

    @registry.register
    async def watch(event: Placed | Shipped) -> None:
        pass


async def emit_from_two_senders(recorder: Recorder) -> None:
    alice, bob = recorder.sender("alice"), recorder.sender("bob")
    await alice.emit(Placed(1))
    await bob.emit(Placed(10))
    await alice.emit(Placed(2))
    await alice.emit(Placed(3))


async def publish_one(recorder: Recorder) -> None:
    await recorder.sender("alice").publish(Placed(1))


async def publish_one_failing(recorder: Recorder) -> None:
    with pytest.raises(InjectedFault):
        await recorder.sender("alice").publish(Placed(1))


async def emit_one(recorder: Recorder) -> None:
    await recorder.sender("alice").emit(Placed(1))


def deliveries_of(recorder: Recorder, handler: str) -> list[Delivery]:
    return recorder.deliveries(handler)


def swapped(recorder: Recorder, a: Entry, b: Entry) -> Recorder:
    entries = list(recorder.entries)
    i, j = entries.index(a), entries.index(b)
    entries[i], entries[j] = entries[j], entries[i]
    return recorder.with_entries(entries)


def without(recorder: Recorder, *gone: Entry) -> Recorder:
    return recorder.with_entries(e for e in recorder.entries if all(e is not g for g in gone))


def fails(
    check: Callable[[Recorder], None], recorder: Recorder, match: str
) -> DeliveryAssertionError:
    with pytest.raises(DeliveryAssertionError, match=match) as caught:
        check(recorder)
    return caught.value


# -- FIFO per sender ----------------------------------------------------------------------------


def test_fifo_per_sender_holds_on_interleaved_senders_and_fails_on_a_swap() -> None:
    good = record(one_handler, emit_from_two_senders)
    assert_fifo_per_sender(good)
    assert_delivery_guarantees(good)
    alice = [d for d in deliveries_of(good, "keep") if d.sender == "alice"]
    error = fails(
        assert_fifo_per_sender,
        swapped(good, alice[0], alice[1]),
        r"^per-sender FIFO: keep got alice\[0\] after alice\[1\], which alice sent later",
    )
    assert [(d.sender, d.seq) for d in error.excerpt] == [("alice", 1), ("alice", 0)]  # type: ignore[union-attr]
    # other senders' messages in between are no evidence: only the two out of order are shown
    assert len(error.excerpt) == 2


def test_fifo_per_sender_fails_when_a_retry_does_not_stay_in_place() -> None:
    good = record(one_handler, emit_from_two_senders, [Fault("keep", 1, times=1)])
    assert_fifo_per_sender(good)
    failed, retried = deliveries_of(good, "keep")[:2]
    assert (failed.outcome, retried.outcome, failed.seq, retried.seq) == ("raised", "ok", 0, 0)
    later = next(d for d in deliveries_of(good, "keep") if (d.sender, d.seq) == ("alice", 1))
    fails(assert_fifo_per_sender, swapped(good, retried, later), r"alice\[0\] after alice\[1\]")


# -- exactly once / at least once ---------------------------------------------------------------


def test_exactly_once_fails_on_a_duplicate_and_at_least_once_accepts_it() -> None:
    good = record(one_handler, emit_from_two_senders)
    assert_exactly_once(good)
    target = deliveries_of(good, "keep")[1]
    entries = list(good.entries)
    entries.insert(entries.index(target) + 1, attrs.evolve(target))
    duplicated = good.with_entries(entries)
    error = fails(assert_exactly_once, duplicated, r"^exactly once: keep handled bob\[0\] 2 times")
    assert len(error.excerpt) == 3  # the send and the two successes
    assert_at_least_once(duplicated)


def test_exactly_and_at_least_once_fail_on_a_lost_message() -> None:
    good = record(one_handler, emit_from_two_senders)
    lost = without(good, deliveries_of(good, "keep")[-1])
    for check in (assert_exactly_once, assert_at_least_once):
        error = fails(check, lost, r"alice\[2\] was never handled successfully by keep")
        assert len(error.excerpt) == 1


def test_a_dead_letter_is_a_loss_unless_allowed() -> None:
    bad = record(one_handler, emit_one, [Fault("keep", 1, "permanent")])
    fails(assert_at_least_once, bad, r"alice\[0\] was dead-lettered by keep")
    assert_at_least_once(bad, allow_dead_letters=True)
    assert_exactly_once(bad, "keep", allow_dead_letters=True)
    assert_delivery_guarantees(bad, allow_dead_letters=True)


def test_messages_sent_without_a_recorder_sender_are_checked_for_duplicates() -> None:
    async def unlabelled(recorder: Recorder) -> None:
        await recorder.terminal.bus.emit(Placed(1))

    good = record(one_handler, unlabelled)
    assert_exactly_once(good)
    (only,) = deliveries_of(good, "keep")
    assert (only.sender, only.seq, only.via) == ("", -1, "unknown")
    entries = [*good.entries, attrs.evolve(only)]
    fails(assert_exactly_once, good.with_entries(entries), r"keep handled message \w+ twice")


# -- publish order ------------------------------------------------------------------------------


def test_publish_order_holds_and_fails_when_handlers_are_reached_out_of_order() -> None:
    good = record(two_handlers, publish_one)
    assert_publish_order(good)
    first, second = deliveries_of(good, "first")[0], deliveries_of(good, "second")[0]
    error = fails(
        assert_publish_order,
        swapped(good, first, second),
        r"^publish order: publish alice\[0\] reached \[second, first\], expected \[first, second\]",
    )
    assert len(error.excerpt) == 2  # the publish and the first wrong handler
    fails(
        assert_publish_order,
        without(good, second),
        r"reached \[first\], expected \[first, second\]",
    )


def test_publish_order_stops_at_the_handler_that_raised() -> None:
    good = record(two_handlers, publish_one_failing, [Fault("first", 1)])
    assert [d.handler for d in good.deliveries()] == [good.handler_name("first")]
    assert good.sends()[0].error is not None
    assert_publish_order(good)
    assert_delivery_guarantees(good)  # the failure went to the publisher: resolved
    stray = attrs.evolve(deliveries_of(good, "first")[0], handler=good.handler_name("second"))
    fails(
        assert_publish_order,
        good.with_entries([*good.entries, stray]),
        r"reached \[first, second\], expected \[first\]; handler 2 should be no further handler",
    )


# -- causal order -------------------------------------------------------------------------------


def test_causal_order_holds_for_emit_and_fails_when_the_effect_comes_first() -> None:
    good = record(causing, emit_one)
    assert_causal_order(good)
    assert_delivery_guarantees(good)
    placed, shipped = deliveries_of(good, "watch")
    assert (placed.event, shipped.event) == (Placed(1), Shipped(1))
    error = fails(
        assert_causal_order,
        swapped(good, placed, shipped),
        r"^causal order: watch got Shipped\(order=1\) before Placed\(order=1\), which caused it",
    )
    assert len(error.excerpt) == 2
    cause = deliveries_of(good, "ship")[0]
    # the effect delivered before any delivery of its cause has started
    entries = [e for e in good.entries if e is not placed]
    i, j = entries.index(cause), entries.index(shipped)
    entries[i], entries[j] = entries[j], entries[i]
    moved = good.with_entries(entries)
    fails(
        assert_causal_order, moved, r"message \w+ was delivered before its cause \w+ was delivered"
    )


def test_causal_order_catches_a_publish_overtaken_by_what_it_caused() -> None:
    # publish reaches `ship` first, whose emit lands in `watch`'s mailbox before the publish does
    real = record(causing, publish_one)
    fails(assert_causal_order, real, r"watch got Shipped\(order=1\) before Placed\(order=1\)")
    assert_causal_order(real, "ship")


# -- failures end in success or a dead letter ---------------------------------------------------


def test_failures_resolved_fails_without_the_retry_or_the_dead_letter() -> None:
    retried = record(one_handler, emit_one, [Fault("keep", 1, times=2)])
    assert_failures_resolved(retried)
    success = deliveries_of(retried, "keep")[-1]
    error = fails(
        assert_failures_resolved,
        without(retried, success),
        r"^failures resolved: keep failed on Placed\(order=1\) and neither handled it",
    )
    assert [d.attempt for d in error.excerpt] == [2]  # type: ignore[union-attr]
    dead = record(one_handler, emit_one, [Fault("keep", 1, "permanent")])
    assert_failures_resolved(dead)
    fails(assert_failures_resolved, without(dead, *dead.notices("dead_letter")), "neither handled")


# -- nothing after a stop -----------------------------------------------------------------------


def test_nothing_after_stop_fails_on_a_delivery_after_the_handler_stopped() -> None:
    good = record(one_handler, emit_from_two_senders)
    assert_nothing_after_stop(good)
    name = good.handler_name("keep")
    stop = Notice(0, "stopped", name, HandlerStopped(name, "test"), "", "test")
    entries = list(good.entries)
    entries.insert(entries.index(deliveries_of(good, "keep")[-1]), stop)
    stopped = good.with_entries(entries)
    error = fails(
        assert_nothing_after_stop,
        stopped,
        r"^nothing after stop: keep got a delivery after it stopped",
    )
    assert len(error.excerpt) == 2
    assert "stopped in keep (test)" in str(error)
    assert_nothing_after_stop(stopped.with_entries([*good.entries, stop]))


def test_a_failure_message_marks_the_gap_between_excerpt_entries() -> None:
    good = record(one_handler, emit_from_two_senders)
    alice = [d for d in deliveries_of(good, "keep") if d.sender == "alice"]
    error = fails(assert_fifo_per_sender, swapped(good, alice[0], alice[2]), "FIFO")
    lines = str(error).splitlines()
    assert lines[1].startswith("  #")
    assert lines[2] == "  ..."
    assert lines[3].startswith("  #")


def test_a_message_dropped_by_a_full_mailbox_counts_as_dead_lettered_not_lost() -> None:
    def small(registry: MessageRegistry) -> None:
        @registry.register(mailbox_capacity=1, overflow="drop_new")
        async def keep(placed: Placed) -> None:
            pass

    async def flood(recorder: Recorder) -> None:
        bus = recorder.sender("alice")
        for order in range(3):
            bus.emit_nowait(Placed(order))

    dropped = record(small, flood)
    reasons = {n.reason for n in dropped.notices("dead_letter")}
    assert reasons == {"mailbox_overflow"}
    assert len(deliveries_of(dropped, "keep")) < 3
    fails(assert_at_least_once, dropped, r"alice\[\d\] was dead-lettered by keep")
    assert_delivery_guarantees(dropped, allow_dead_letters=True)


def test_a_handler_stopped_for_good_gets_nothing_more_and_its_queue_is_dead_lettered() -> None:
    def fragile(registry: MessageRegistry) -> None:
        @registry.register(retries=1, retry_backoff=0.0, max_restarts=2, restart_period=60.0)
        async def keep(placed: Placed) -> None:
            pass

    async def poison_then_more(recorder: Recorder) -> None:
        bus = recorder.sender("alice")
        for order in range(4):
            await bus.emit(Placed(order))

    stopped = record(
        fragile, poison_then_more, [Fault("keep", 1, "permanent"), Fault("keep", 2, "permanent")]
    )
    kinds = [n.kind for n in stopped.notices()]
    assert "stopped" in kinds
    assert_nothing_after_stop(stopped)
    assert_failures_resolved(stopped)
    assert_delivery_guarantees(stopped, allow_dead_letters=True)
    fails(assert_at_least_once, stopped, "was dead-lettered by keep")
