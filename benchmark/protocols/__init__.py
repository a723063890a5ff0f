"""Protocols: one module each, registered by name in `PROTOCOLS` (classes, not instances)."""

from benchmark.protocols.base import Features, Protocol, ProtocolResult, TaskData
from benchmark.registry import Registry

PROTOCOLS: Registry[type[Protocol]] = Registry("protocol", package=__name__)


def make_protocol(name: str, params: dict | None = None) -> Protocol:
    return PROTOCOLS.get(name)(**(params or {}))


__all__ = ["PROTOCOLS", "Features", "Protocol", "ProtocolResult", "TaskData", "make_protocol"]
