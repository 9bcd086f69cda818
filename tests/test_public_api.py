"""Each package's public surface is exactly its ``__all__``, and every exported name is documented.

A package's *tree* is the package itself and its modules (``bus`` covers ``bus._bus``; ``bus.sinks``
covers ``bus.sinks._sqlite``). A public class or function defined in the tree and reachable as an
attribute of the package must be listed in ``__all__``. Names a package merely uses from elsewhere (for
instance ``bus.lihil`` importing ``EventBus`` from ``bus._bus``) are not its surface.

``bus.sinks`` and ``bus.transport`` are checked once they exist, ``bus.lihil`` when lihil is installed.
"""

import enum
import importlib
import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Plain values cannot carry a docstring of their own; document them in the module instead.
UNDOCUMENTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, enum.Enum)


def _checked_packages() -> list[str]:
    names = ["actors", "supervisor", "bus"]
    if (ROOT / "bus" / "sinks" / "__init__.py").is_file():
        names.append("bus.sinks")
    if (ROOT / "bus" / "transport" / "__init__.py").is_file():
        names.append("bus.transport")
    if importlib.util.find_spec("lihil") is not None:  # the optional `lihil` extra
        names.append("bus.lihil")
    if (ROOT / "bus" / "testing" / "__init__.py").is_file():
        names.append("bus.testing")
    return names


def _in_tree(obj: object, package: str) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module == package or module.startswith(package + ".")


def _own_doc(obj: object) -> str | None:
    doc = getattr(obj, "__doc__", None)
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
        return doc
    # An instance (a typing alias, say) inherits its class's docstring; that does not count.
    return doc if doc is not type(obj).__doc__ else None


@pytest.fixture(params=_checked_packages())
def package(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


def test_all_is_a_tuple_of_unique_names(package: ModuleType) -> None:
    exported = getattr(package, "__all__", None)
    assert isinstance(exported, tuple), f"{package.__name__}.__all__ must be a tuple"
    assert all(isinstance(name, str) for name in exported)
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert not duplicates, f"{package.__name__}.__all__ lists {duplicates} twice"


def test_every_name_in_all_exists(package: ModuleType) -> None:
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing, f"{package.__name__}.__all__ names missing attributes: {missing}"


def test_every_public_class_and_function_is_in_all(package: ModuleType) -> None:
    unlisted = sorted(
        name
        for name, obj in vars(package).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and _in_tree(obj, package.__name__)
        and name not in package.__all__
    )
    assert not unlisted, f"{package.__name__} exposes {unlisted} but its __all__ does not list them"


def test_every_name_in_all_has_a_docstring(package: ModuleType) -> None:
    undocumented = sorted(
        name
        for name in package.__all__
        if hasattr(package, name)
        and not isinstance(getattr(package, name), UNDOCUMENTABLE)
        and not (_own_doc(getattr(package, name)) or "").strip()
    )
    assert not undocumented, f"{package.__name__}: no docstring on {undocumented}"
