"""Extraction: end-to-end throughput (decode + preprocess + batch + forward, `extract_features`) vs the
bare model forward on already-preprocessed batches of the same size, in one process.

    python perf/extraction.py [--model bundled:efficientnet_lite0] [--images 4096] [--size 64]
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
from benchmark.encoders import load_encoder  # noqa: E402
from benchmark.pipeline.extraction import PreprocessedImages, extract_features  # noqa: E402


def compare(model: str, images: int, size: int, batch_size: int = 64, workers: int = 0) -> dict:
    encoder = load_encoder(model)
    preprocessing = encoder.preprocessing.with_overrides({"input_size": size})
    split = load_split(DATASETS.get("fashion_mnist"), "test", None)
    split = split.subset(torch.arange(images).numpy())
    dataset = PreprocessedImages(split, preprocessing)
    batches = [torch.stack([dataset[i][1] for i in range(s, min(s + batch_size, images))])
               for s in range(0, images, batch_size)]
    encoder.encode(batches[0])  # warm up
    start = time.perf_counter()
    for batch in batches:
        encoder.encode(batch)
    bare_s = time.perf_counter() - start
    start = time.perf_counter()
    extracted = extract_features(encoder, split, preprocessing, batch_size=batch_size, workers=workers)
    full_s = time.perf_counter() - start
    return {"size": f"{model} on {images} Fashion-MNIST images at {size}px, batch {batch_size}",
            "bare_img_s": images / bare_s, "end_to_end_img_s": images / full_s, "ratio": bare_s / full_s,
            "complete": len(extracted.kept) == images}


def main() -> None:
    print(describe())
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled:efficientnet_lite0")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 128 images at 32 px")
    args = parser.parse_args()
    if args.quick:
        args.images, args.size = 128, 32
    row = compare(args.model, args.images, args.size)
    print(f"extraction {row['size']}: bare forward {row['bare_img_s']:.0f} img/s, end to end "
          f"{row['end_to_end_img_s']:.0f} img/s = {100 * row['ratio']:.0f}% of the forward")


if __name__ == "__main__":
    main()
