"""A small typed registry: plugins register by name; unknown names get close-match suggestions.

Each plugin kind (encoder sources, datasets, protocols, training methods) owns one `Registry`, created
in its package's `__init__`. Registration happens in the plugin's own module, so adding a plugin is one
new file:

    @PROTOCOLS.register            # the name is the class's `name` attribute, written once
    class MyProtocol(Protocol): name = "mine"; ...

    @ENCODER_SOURCES.register("hub")   # a function has no `name`: give it here
    def build(name, weights): ...

Resolution is lazy, as lm-eval's "module:attr" entries are: the package's modules are read (not imported)
once to index which module registers which name (`@REG.register("name")`, a registered class's
`name = "..."`, `register_dataset(DatasetSpec(name="..."))`), and `get(name)` imports that module alone.
Listing every name, or a name the index does not know (registered in a loop, or by a plugin), imports
every module. `add_lazy(name, "module:attr")` registers an entry that is imported on first `get`, and
`where(name)` says where an entry is defined.

Plugins from outside the package are modules that make such calls: `--plugin MODULE` (or a file path)
imports one, and every module named in the `transferbench.plugins` entry-point group of an installed
distribution is imported on first use of any registry.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import inspect
import importlib.util
import pkgutil
import sys
import traceback
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
        self._lazy: dict[str, str] = {}  # name -> "module:attr", imported on first get
        self._origin: dict[str, str] = {}  # name -> "file:line" of the statement that registered it
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
        self._origin.setdefault(name, registering_statement())

    def add_lazy(self, name: str, target: str) -> None:
        """Register `name` as "package.module:attr", imported and checked on first `get`."""
        if ":" not in target:
            raise UserError(f"a lazy {self.kind} entry is 'module:attr', got {target!r}")
        self._lazy[name] = target

    def get(self, name: str) -> T:
        if name not in self._entries:
            self._resolve(name)
        if name not in self._entries:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

    def where(self, name: str) -> str:
        """Where `name` is defined: "path:line (module:attr)" for a class or function, else the line
        that registered it."""
        obj = self.get(name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            path, line = inspect.getsourcefile(obj), inspect.getsourcelines(obj)[1]
            return f"{path}:{line} ({obj.__module__}:{obj.__qualname__})"
        return self._origin.get(name, "registered at run time")

    def names(self) -> list[str]:
        self._discover()
        for name in list(self._lazy):
            self._resolve(name)
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _resolve(self, name: str) -> None:
        """Import what registers `name`: its lazy target, else its indexed module, else everything."""
        if name in self._lazy:
            module, _, attr = self._lazy.pop(name).partition(":")
            self.add(name, getattr(importlib.import_module(module), attr))
        elif self._package and name in package_index(self._package):
            importlib.import_module(package_index(self._package)[name])
        if name not in self._entries:
            self._discover()

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self._package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self._package}.{module.name}")
        load_entry_point_plugins()


def registering_statement() -> str:
    """"file:line" of the module-level statement (or, failing that, the call) that is registering."""
    frame = sys._getframe(1)
    caller = None
    while frame is not None:
        if caller is None and frame.f_code.co_filename != __file__:
            caller = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        if frame.f_code.co_name == "<module>" and frame.f_code.co_filename != __file__:
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return caller or "unknown"


@functools.cache
def package_index(package: str) -> dict[str, str]:
    """name -> module for the names a package's modules visibly register (read with `ast`, not imported)."""
    root = Path(importlib.util.find_spec(package).submodule_search_locations[0])
    index: dict[str, str] = {}
    for path in sorted(root.glob("*.py")):
        if not path.name.startswith("_"):
            index |= {name: f"{package}.{path.stem}" for name in registered_names(ast.parse(path.read_text()))}
    return index


def registered_names(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names += [name for d in node.decorator_list if (name := decorated_name(d, node))]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "register_dataset" and node.args:
            names += [k.value.value for k in getattr(node.args[0], "keywords", [])
                      if k.arg == "name" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)]
    return names


def decorated_name(decorator: ast.expr, node: ast.ClassDef | ast.FunctionDef) -> str | None:
    """The name `@X.register("name")` gives, or a class's `name = "..."` under a bare `@X.register`."""
    if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "register" and decorator.args:
        first = decorator.args[0]
        return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
    if getattr(decorator, "attr", "") == "register" and isinstance(node, ast.ClassDef):
        for statement in node.body:
            if (isinstance(statement, ast.Assign) and [getattr(t, "id", "") for t in statement.targets] == ["name"]
                    and isinstance(statement.value, ast.Constant)):
                return statement.value.value
    return None


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
    """Import a plugin: a module name on sys.path (`my_pkg.plugin`) or a .py file path. A plugin that is
    missing, has a syntax error or raises while importing is one UserError naming the plugin and where."""
    path = Path(module).expanduser()
    try:
        if path.suffix == ".py":
            import_file(path)
        else:
            importlib.import_module(module)
    except UserError:
        raise
    except ModuleNotFoundError as err:
        if err.name != module.split(".")[0] and not path.suffix:
            raise UserError(f"plugin {module!r} imports {err.name!r}, which is not installed") from None
        raise UserError(f"plugin {module!r} not found: give an importable module name (on PYTHONPATH) or a .py "
                        f"file path") from None
    except SyntaxError as err:
        raise UserError(f"plugin {module!r} has a syntax error at {err.filename}:{err.lineno}: {err.msg}") from None
    except Exception as err:  # the plugin's own code failed: say where, not a traceback of ours
        frame = traceback.extract_tb(err.__traceback__)[-1]
        raise UserError(f"plugin {module!r} raised {type(err).__name__}: {err} (at {frame.filename}:{frame.lineno}) "
                        f"while being imported; fix the plugin") from None


def import_file(path: Path) -> None:
    if not path.is_file():
        raise ModuleNotFoundError(name=str(path))
    spec = importlib.util.spec_from_file_location(f"transferbench_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
