"""Extraction, in one process: the bare model forward on already-preprocessed batches with its batch norms as
they are and folded into the convolutions (`benchmark.folding`, what extraction runs), side by side, and
the end-to-end throughput (decode + preprocess + batch + folded forward, `extract_features`) against it;
and the preprocessing per image as a torchvision Compose and as extraction runs it (`ImageTransform`).

    python perf/extraction.py [--model bundled:efficientnet_lite0 ...] [--images 4096] [--size 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf._machine import describe  # noqa: E402
from benchmark.data import DATASETS, load_split  # noqa: E402
from perf._timing import best_of  # noqa: E402
from benchmark.devices import IMAGE_LAYOUT  # noqa: E402
from benchmark.commands.common import positive_int  # noqa: E402
from benchmark.encoders import load_encoder  # noqa: E402
from benchmark.errors import UserError  # noqa: E402
from benchmark.folding import folded_batchnorm  # noqa: E402
from benchmark.pipeline.extraction import PreprocessedImages, extract_features, probe_images  # noqa: E402

DEFAULT_MODELS = ["bundled:efficientnet_lite0", "bundled:efficientnet_lite2"]


def preprocessing_ms(split, preprocessing, images: int, repeats: int) -> tuple[float, float]:
    """Milliseconds per image of torchvision's Compose and of `ImageTransform` (what extraction runs) on the
    same decoded images, side by side."""
    decoded = [split.image_tensor(i) for i in range(images)]
    composed, ours = preprocessing.composed(), preprocessing.transform()
    per_image = [best_of(repeats, lambda: [transform(image) for image in decoded])[0] * 1000 / images
                 for transform in (composed, ours)]
    return per_image[0], per_image[1]


def compare(model: str, images: int, size: int, batch_size: int = 64, workers: int = 0, repeats: int = 3) -> dict:
    encoder = load_encoder(model)
    preprocessing = encoder.preprocessing.with_overrides({"input_size": size})
    split = load_split(DATASETS.get("fashion_mnist"), "test", None)
    split = split.subset(torch.arange(images).numpy())
    dataset = PreprocessedImages(split, preprocessing)
    batches = [torch.stack([dataset[i][1] for i in range(s, min(s + batch_size, images))])
               for s in range(0, images, batch_size)]
    encoder.model.to(memory_format=IMAGE_LAYOUT)
    batches = [batch.contiguous(memory_format=IMAGE_LAYOUT) for batch in batches]

    def forward_all() -> None:
        for batch in batches:
            encoder.encode(batch)

    encoder.encode(batches[0])  # warm up
    as_is_s = best_of(repeats, forward_all)[0]
    with folded_batchnorm(encoder.model, probe_images(preprocessing, "cpu")) as folded:
        folded_s = best_of(repeats, forward_all)[0]
    start = time.perf_counter()
    extracted = extract_features(encoder, split, preprocessing, batch_size=batch_size, workers=workers)
    full_s = time.perf_counter() - start
    composed_ms, ours_ms = preprocessing_ms(split, preprocessing, images, repeats)
    return {"size": f"{model} on {images} Fashion-MNIST images at {size}px, batch {batch_size}", "folded": folded,
            "composed_ms": composed_ms, "ours_ms": ours_ms,
            "as_is_img_s": images / as_is_s, "folded_img_s": images / folded_s, "fold_ratio": as_is_s / folded_s,
            "end_to_end_img_s": images / full_s, "ratio": folded_s / full_s, "complete": len(extracted.kept) == images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="repeatable (default: Lite0 and Lite2)")
    parser.add_argument("--images", type=positive_int, default=4096)
    parser.add_argument("--size", type=positive_int, default=64)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 128 images at 32 px")
    args = parser.parse_args()
    print(describe())
    if args.quick:
        args.images, args.size, args.model = 128, 32, args.model or DEFAULT_MODELS[:1]
    for model in args.model or DEFAULT_MODELS:
        try:
            row = compare(model, args.images, args.size, repeats=1 if args.quick else 3)
        except UserError as error:  # an unknown or unloadable --model
            parser.error(str(error))
        print(f"extraction {row['size']}: bare forward {row['as_is_img_s']:.0f} img/s as it is, "
              f"{row['folded_img_s']:.0f} img/s with {row['folded']} batch norms folded ({row['fold_ratio']:.2f}x); "
              f"end to end {row['end_to_end_img_s']:.0f} img/s = {100 * row['ratio']:.0f}% of the folded forward; "
              f"preprocessing {row['composed_ms']:.3f} ms per image as a torchvision Compose, "
              f"{row['ours_ms']:.3f} ms as extraction runs it ({row['composed_ms'] / row['ours_ms']:.2f}x)")


if __name__ == "__main__":
    main()
