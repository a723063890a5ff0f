"""Reading the pickles some official datasets ship (revisitop's `gnd_*.pkl`, CIFAR's batches) without
letting a data file run code: a restricted unpickler that builds only plain containers, numbers, strings
and numpy arrays, and refuses any other global with one message.

A plain `pickle.load` would call whatever a file's `__reduce__` names (`os.system` included).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from benchmark.errors import UserError

ALLOWED = {
    ("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str",
                                    "bytes", "bytearray", "bool", "slice", "range")
} | {
    ("collections", "OrderedDict"), ("_codecs", "encode"),  # Python 2 pickles store bytes through _codecs.encode
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return super().find_class(module, name)


def load(path: Path, encoding: str = "ASCII") -> Any:
    """The pickled data of `path`, or one UserError when it names anything but data types."""
    try:
        with open(path, "rb") as handle:
            return RestrictedUnpickler(handle, encoding=encoding).load()
    except pickle.UnpicklingError as err:
        raise UserError(f"refused to read {path}: it is a pickle that names {err}, which is not a data type (an "
                        f"official file holds only lists, dicts and numpy arrays); replace it with the official "
                        f"download") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UserError(f"{path} is not a readable pickle ({type(err).__name__}: {err}); replace it with the "
                        f"official download") from None
