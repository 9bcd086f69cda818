"""Every async test in this directory (tests/actors) is bounded: one that would wait forever fails instead."""

import inspect
from collections.abc import Generator

import pytest

from tests.actors.helpers import bounded


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    test = pyfuncitem.obj
    if inspect.iscoroutinefunction(test):
        pyfuncitem.obj = bounded(test)
    try:
        return (yield)
    finally:
        pyfuncitem.obj = test
