"""transferbench: how well does a pretrained visual representation transfer?

Encoders are turned into cached features once; pluggable protocols (linear probe, k-NN, ...) score
them; results land in a SQLite store and render as Ericsson et al. (2021)-style tables.
"""

__version__ = "0.1.0"
