"""Protocols: one module each, registered by name in `PROTOCOLS` (classes, not instances)."""

from benchmark.protocols.base import Features, FeatureTask, ModelTask, Protocol, ProtocolResult
from benchmark.registry import Registry, subclass_of

PROTOCOLS: Registry[type[Protocol]] = Registry("protocol", package=__name__, check=subclass_of(Protocol),
                                                expected="a subclass of benchmark.protocols.Protocol")


def make_protocol(name: str, params: dict | None = None) -> Protocol:
    return PROTOCOLS.get(name)(**(params or {}))


__all__ = ["PROTOCOLS", "Features", "Protocol", "ProtocolResult", "FeatureTask", "ModelTask", "make_protocol"]
