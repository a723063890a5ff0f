"""An `nn.Module` in memory as an encoder (a model mid-training, or one built in a notebook), for
`benchmark.api.evaluate_model`. Not a model-spec source: there is no file to name.

The module is deep-copied, so evaluating never changes the caller's model (its train/eval mode, device
and memory layout stay as they were). Its identity is the class and a SHA-256 of its state dict
(names, dtypes, shapes and bytes): the same weights share cache entries and rows whatever the name.
"""

from __future__ import annotations

import copy
import hashlib

import torch
from torch import nn

from benchmark.backbones import timm_dense, timm_preprocessing
from benchmark.encoders.base import Encoder
from benchmark.errors import UserError
from benchmark.preprocessing import Preprocessing


def state_digest(model: nn.Module) -> str:
    """SHA-256 of the state dict: each entry's name, dtype and shape, then its raw bytes, in name order."""
    found = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach()
        found.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        found.update(tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return found.hexdigest()


def encoder_from_module(model: nn.Module, name: str, preprocessing: Preprocessing | None = None) -> Encoder:
    """A copy of `model` as an encoder. Its forward must map an image batch to features (N, ...); a timm
    classifier's head is removed on the copy (its features are the head-less forward). The preprocessing is
    given, or timm's pretrained config of the model."""
    if not isinstance(model, nn.Module):
        raise UserError(f"evaluate_model takes a torch.nn.Module, got {type(model).__name__}")
    network = copy.deepcopy(model).cpu()
    if hasattr(network, "reset_classifier"):
        network.reset_classifier(0)
    if preprocessing is None:
        if not hasattr(network, "pretrained_cfg"):
            raise UserError(f"{name}: give preprocessing= (e.g. Preprocessing(input_size=224, mean=..., std=...)); "
                            f"only timm models carry their own")
        preprocessing = timm_preprocessing(network)
    identity = {"source": "memory", "class": f"{type(model).__module__}.{type(model).__qualname__}",
                "state_sha256": state_digest(network)}
    dense = timm_dense(network) if hasattr(network, "forward_features") else None
    return Encoder(name, network, preprocessing, identity, dense_fn=dense)
