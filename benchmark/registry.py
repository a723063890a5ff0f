"""A small typed registry: plugins register by name; unknown names get close-match suggestions.

Each plugin kind (encoder sources, datasets, protocols, training methods) owns one `Registry`, created
in its package's `__init__`. Registration happens in the plugin's own module, and the registry imports
every module of its package the first time it is queried, so adding a plugin is one new file:

    @PROTOCOLS.register            # the name is the class's `name` attribute, written once
    class MyProtocol(Protocol): name = "mine"; ...

    @ENCODER_SOURCES.register("hub")   # a function has no `name`: give it here
    def build(name, weights): ...

Plugins from outside the package are modules that make such calls: `--plugin MODULE` (or a file path)
imports one, and every module named in the `transferbench.plugins` entry-point group of an installed
distribution is imported on first use of any registry.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from benchmark.errors import UserError

T = TypeVar("T")
PLUGIN_GROUP = "transferbench.plugins"


class UnknownNameError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(sorted(valid))}."


class Registry(Generic[T]):
    """Named plugins of one kind. `check` validates what is registered (a base class for classes, a
    type for instances, or any predicate), so a wrong object fails at registration, not mid-run."""

    def __init__(self, kind: str, package: str | None = None, check: Callable[[Any], bool] | None = None,
                 expected: str = ""):
        self.kind, self.expected = kind, expected
        self._package, self._check = package, check
        self._entries: dict[str, T] = {}
        self._discovered = package is None

    def register(self, name_or_obj: str | T) -> Any:
        """`@register("name")`, or `@register` alone for an object with a `name` attribute."""
        if not isinstance(name_or_obj, str):
            self.add(getattr(name_or_obj, "name"), name_or_obj)
            return name_or_obj

        def decorator(obj: T) -> T:
            self.add(name_or_obj, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if not isinstance(name, str) or not name:
            raise UserError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if self._check is not None and not self._check(obj):
            raise UserError(f"cannot register {obj!r} as {self.kind} {name!r}: expected {self.expected}")
        if name in self._entries and self._entries[name] is not obj:
            raise UserError(f"{self.kind} {name!r} is registered twice ({self._entries[name]!r} and {obj!r}); "
                            f"rename one of them")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        self._discover()
        if name not in self._entries:
            raise UnknownNameError(unknown_name_message(self.kind, name, list(self._entries)))
        return self._entries[name]

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self._package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self._package}.{module.name}")
        load_entry_point_plugins()


def subclass_of(base: type) -> Callable[[Any], bool]:
    return lambda obj: isinstance(obj, type) and issubclass(obj, base)


_entry_points_loaded = False


def load_entry_point_plugins() -> None:
    """Import every module of the `transferbench.plugins` entry-point group (once per process)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in entry_points(group=PLUGIN_GROUP):
        load_plugin(entry.value)


def load_plugin(module: str) -> None:
    """Import a plugin: a module name on sys.path (`my_pkg.plugin`) or a .py file path."""
    path = Path(module).expanduser()
    try:
        if path.suffix == ".py":
            import_file(path)
        else:
            importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module.split(".")[0] and not path.suffix:
            raise
        raise UserError(f"plugin {module!r} not found: give an importable module name (on PYTHONPATH) or a .py "
                        f"file path") from None


def import_file(path: Path) -> None:
    if not path.is_file():
        raise ModuleNotFoundError(name=str(path))
    spec = importlib.util.spec_from_file_location(f"transferbench_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
