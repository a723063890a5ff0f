"""The evaluation pipeline, in the order data flows through it:

    planner     suite x encoder -> typed cells (pending / done / skipped), keyed by `benchmark.identity`
    inputs      a cell's features out of the cache (extracted on a miss) or its image pool, split for selection
    extraction  images -> features, batched on the run's device
    runner      runs the pending cells and writes each result row as it finishes
    executor    the same cells as local or SLURM jobs
"""
