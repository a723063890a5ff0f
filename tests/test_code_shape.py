"""The package's shape, as the developers' guide states it: short functions and classes, and data that
flows one way (encoder -> cache -> protocol -> results store -> tables)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"
MAX_FUNCTION_LINES, MAX_CLASS_LINES = 40, 150
# what each layer must never import (module prefixes)
FORBIDDEN = {
    "protocols": ("benchmark.encoders", "benchmark.data", "benchmark.training", "benchmark.pipeline",
                  "benchmark.results", "benchmark.cache"),
    "training": ("benchmark.protocols", "benchmark.pipeline"),
    "results": ("benchmark.protocols", "benchmark.encoders", "benchmark.data", "benchmark.pipeline",
                "benchmark.training"),
}


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def definitions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node, node.end_lineno - node.lineno + 1


def test_no_function_or_class_is_too_long():
    too_long = []
    for path in modules():
        for node, lines in definitions(ast.parse(path.read_text())):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if lines > limit:
                too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, "\n".join(too_long)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downstream(layer):
    crossings = [f"{path.relative_to(PACKAGE.parent)} imports {name}"
                 for path in sorted((PACKAGE / layer).rglob("*.py")) for name in imported_modules(path)
                 if name.startswith(FORBIDDEN[layer])]
    assert not crossings, "\n".join(crossings)


def test_plugins_of_one_kind_do_not_import_each_other():
    """A method, protocol or encoder source is one file: siblings share code through neutral modules."""
    crossings = []
    for kind in ("training/methods", "protocols", "encoders"):
        siblings = {p.stem for p in (PACKAGE / kind).glob("*.py") if ".register" in p.read_text()}
        package = "benchmark." + kind.replace("/", ".")
        for path in sorted((PACKAGE / kind).glob("*.py")):
            crossings += [f"{kind}/{path.name} imports {name}" for name in imported_modules(path)
                          if name.startswith(package + ".") and name.rsplit(".", 1)[1] in siblings - {path.stem}]
    assert not crossings, "\n".join(crossings)
