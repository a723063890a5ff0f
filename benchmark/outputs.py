"""Per-example outputs of a result: what a protocol records and what the statistics read (paired tests,
bootstrap CIs), in one typed place so the two ends cannot drift apart."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PerExample:
    """`test_correct`: whether each test example was classified correctly (multi-class protocols).
    `episode_accuracies` and `episodes_digest`: each few-shot episode's accuracy, and which episodes.
    `test_confidence`: each test example's top softmax probability (calibration: what an ECE bootstrap
    resamples together with `test_correct`), stored as float16."""

    test_correct: np.ndarray | None = None
    episode_accuracies: tuple[float, ...] | None = None
    episodes_digest: str | None = None
    test_confidence: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        """Compact JSON: correctness as base64 of packed bits with its count."""
        record: dict[str, Any] = {}
        if self.test_correct is not None:
            correct = np.asarray(self.test_correct, dtype=bool)
            record["test_correct"] = base64.b64encode(np.packbits(correct)).decode()
            record["test_count"] = int(len(correct))
        if self.episode_accuracies is not None:
            record["episode_accuracies"] = list(self.episode_accuracies)
            record["episodes_digest"] = self.episodes_digest
        if self.test_confidence is not None:
            confidence = np.asarray(self.test_confidence, dtype="<f2")
            record["test_confidence"] = base64.b64encode(confidence.tobytes()).decode()
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any] | None, test_count: int | None = None) -> PerExample:
        """The inverse of `to_json`; `test_count` serves rows stored before the count was recorded."""
        record = record or {}
        correct = None
        if record.get("test_correct"):
            count = int(record.get("test_count", test_count or 0))
            bits = np.unpackbits(np.frombuffer(base64.b64decode(record["test_correct"]), dtype=np.uint8))
            correct = bits[:count].astype(bool)
        accuracies = record.get("episode_accuracies")
        confidence = None
        if record.get("test_confidence"):
            confidence = np.frombuffer(base64.b64decode(record["test_confidence"]), dtype="<f2").astype(np.float64)
        return cls(correct, tuple(accuracies) if accuracies is not None else None, record.get("episodes_digest"),
                   confidence)
