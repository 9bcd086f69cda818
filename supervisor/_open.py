"""``open_supervisor``: run a root supervisor for the duration of an ``async with`` block."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio

from actors import DeadLetters, Terminated
from supervisor._spec import DEFAULT_LINGER, ChildSpec, Intensity, Strategy, SupervisorSpec
from supervisor._supervisor import GiveUpListener, Supervisor, unwrap_group

_DEFAULT_INTENSITY = Intensity()


@asynccontextmanager
async def open_supervisor(
    children: Sequence[ChildSpec] = (),
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: Intensity | None = _DEFAULT_INTENSITY,
    name: str = "root",
    dead_letters: DeadLetters | None = None,
    on_give_up: GiveUpListener | None = None,
    linger: float | None = DEFAULT_LINGER,
    on_child_stopped: Callable[[Terminated], None] | None = None,
) -> AsyncIterator[Supervisor]:
    """Start a root supervisor and its children (in order); stop them in reverse order on exit.

    A child that fails to start raises ``ChildStartError`` here. When the root gives up (restart
    intensity exceeded) the block is cancelled and ``RestartIntensityExceeded`` is raised from the
    ``async with``, with the child's error as its cause. Errors are raised as themselves, never wrapped
    in an ``ExceptionGroup``. ``on_give_up(name, error)`` hears of every supervisor in the tree that
    gives up, before its parent handles the failure (it must be quick and must not raise).
    ``linger``: see ``SupervisorSpec`` (seconds an idle actor keeps its task; ``None``: always).
    ``on_child_stopped``: see ``SupervisorSpec`` (one callback for every root child that stops for good).
    """
    specs: tuple[ChildSpec, ...] = (*children,)
    root = Supervisor(
        name,
        SupervisorSpec(specs, strategy, intensity, linger, on_child_stopped=on_child_stopped),
        dead_letters=dead_letters,
        on_give_up=on_give_up,
    )
    started = root.new_future()
    finished = root.new_future()
    failure: Exception | None = None
    #: a BaseException (SystemExit, ...) that ended the tree
    fatal: BaseException | None = None
    body_error: BaseException | None = None

    def signal_started() -> None:
        if not started.done():
            started.set_result(None)

    async def run_root() -> None:
        nonlocal failure, fatal
        try:
            await root.run(signal_started)
        except Exception as exc:
            failure = exc
            if started.done():
                tg.cancel_scope.cancel()
            else:
                started.set_exception(exc)
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            # SystemExit, KeyboardInterrupt, ... that ended the tree: kept here and raised from the
            # block, for asyncio stops the whole loop with one that leaves a task
            fatal = exc
            if started.done():
                tg.cancel_scope.cancel()
            else:
                started.set_exception(exc)
        finally:
            # the block may be waiting on `finished` and just have been cancelled (which makes the
            # future done): only an unfinished future takes the result
            if not finished.done():
                finished.set_result(None)

    escaped: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_root, name=f"supervisor {name}")
            try:
                await started
            except Exception:
                pass
            else:
                try:
                    yield root
                except Exception as exc:
                    body_error = exc
                except BaseException as exc:
                    if isinstance(exc, anyio.get_cancelled_exc_class()):
                        raise
                    # SystemExit, KeyboardInterrupt, ...: the tree still stops in order first
                    body_error = exc
                if not finished.done():
                    root.request_stop()
                    await finished
    except BaseExceptionGroup as group:
        # raised as themselves, never wrapped in the task group's group
        escaped = unwrap_group(group)
        if escaped is group:
            raise
    finally:
        # also when the block is cancelled from outside: the root's watchers hear of it
        root.terminate(failure or fatal)
    if escaped is not None:
        raise escaped
    if fatal is not None:
        raise fatal
    if failure is not None:
        if body_error is not None:
            failure.__context__ = body_error
        raise failure
    if body_error is not None:
        raise body_error
