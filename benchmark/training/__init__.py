"""Pretraining: the generic loop (`loop.py`) and one module per method (`methods/`), registered by
name in `METHODS`. A method supplies heads, views and a loss; the loop supplies everything else."""

from benchmark.registry import Registry, subclass_of
from benchmark.training.base import Method, MethodContext

METHODS: Registry[type[Method]] = Registry(
    "pretraining method", package="benchmark.training.methods", check=subclass_of(Method),
    expected="a subclass of benchmark.training.Method")

__all__ = ["METHODS", "Method", "MethodContext"]
