"""Instance retrieval on revisited Oxford / Paris (Radenovic et al. 2018), no training.

The queries (the test split, cropped to their boxes) rank the whole database (train and val, put back in
database order by their labels) by cosine similarity of the pooled features; mAP is computed as
revisitop's compute_map for the Easy, Medium and Hard protocols (junk images removed from each ranking;
queries without positives left out). Medium is the headline, as most papers quote it.
"""

from __future__ import annotations

import numpy as np

from benchmark.metrics import REVISITED_PROTOCOLS, revisited_map
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import (FeatureTask, Protocol, ProtocolResult, check_finite, require_test_split,
                                     unit_rows)
from benchmark.vocab import Metric, TaskType


@PROTOCOLS.register
class InstanceRetrieval(Protocol):
    name = "instance_retrieval"
    version = "1.0"
    tasks = (TaskType.INSTANCE,)

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        require_test_split(data, self.name)
        database = data.trainval
        order = np.argsort(np.asarray(database.y))  # labels are database indices: undo the hold-out shuffle
        similarity = unit_rows(data.test.x) @ unit_rows(np.asarray(database.x)[order]).T
        relevance = np.asarray(data.test.y)
        scores = {protocol: revisited_map(relevance, similarity, protocol) for protocol in REVISITED_PROTOCOLS}
        return ProtocolResult(value=scores["medium"], metric=Metric.REVISITED_MAP,
                              details={f"map_{protocol}": value for protocol, value in scores.items()}
                              | {"queries": len(relevance), "database": len(order)})
