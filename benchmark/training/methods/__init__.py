"""Pretraining methods, one module each; each registers itself in `benchmark.training.METHODS`."""
