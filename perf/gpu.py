"""The accelerator path, each figure beside its own ceiling, measured in one process on this machine:

- extraction images/s through `extract_features`, against the bare forward pass on ready batches
  (the compute ceiling) and against decoding + preprocessing alone (the data-loading ceiling), for
  DataLoader workers 0 and all available CPUs, and at bf16;
- the linear sweep with the torch solver on the device, against its floor (iterations x one forward +
  backward pass over the features), and on the CPU against the reference solver (scipy's L-BFGS-B; not
  run beside a GPU, where it would only time the CPU);
- fine-tuning steps/s, against a bare training step on a ready batch.

    python perf/gpu.py [--device cuda] [--quick]

Without CUDA it runs on the CPU at small sizes (as CI could), so the table's shape is checked
everywhere; the GPU numbers exist only where a GPU ran it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf._machine import describe  # noqa: E402
from perf._timing import best_of  # noqa: E402


def synchronised(device: str):
    return (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)


def image_split(count: int, size: int):
    from benchmark.data.base import ImageSplit

    rng = np.random.default_rng(0)
    return ImageSplit(rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8), np.zeros(count, int))


def decode_only(split, preprocessing, workers: int, batch: int, repeats: int) -> float:
    """Images/s of decoding + preprocessing + batching alone (no model): the data-loading ceiling."""
    from torch.utils.data import DataLoader

    from benchmark.pipeline.extraction import PreprocessedImages, collate

    loader = DataLoader(PreprocessedImages(split, preprocessing), batch_size=batch, num_workers=workers,
                        collate_fn=collate, prefetch_factor=4 if workers else None,
                        persistent_workers=workers > 0)  # timed passes reuse the workers: steady state
    seconds, _ = best_of(repeats, lambda: [b for b in loader])
    return len(split) / seconds


def bare_forward(encoder, split, preprocessing, device: str, batch: int, precision, repeats: int) -> float:
    """Images/s of the model alone, at `precision`, on batches already preprocessed and on the device, its
    batch norms folded as extraction runs it: the compute ceiling."""
    from benchmark.devices import IMAGE_LAYOUT, exact_float32
    from benchmark.folding import folded_batchnorm
    from benchmark.pipeline.extraction import probe_images

    transform = preprocessing.transform()
    encoder.model.to(memory_format=IMAGE_LAYOUT)  # as extraction runs
    images = torch.stack([transform(split.image_tensor(i)) for i in range(len(split))]).to(device,
                                                                                          memory_format=IMAGE_LAYOUT)
    sync = synchronised(device)

    def run():
        with torch.autocast(torch.device(device).type, dtype=precision.dtype, enabled=precision.dtype is not None), \
                exact_float32(precision):
            for part in images.split(batch):
                encoder.encode(part)
        sync()

    with folded_batchnorm(encoder.model, probe_images(preprocessing, device)):
        seconds, _ = best_of(repeats, run)
    return len(split) / seconds


def extraction_rows(device: str, quick: bool) -> list[tuple[str, float, float, str]]:
    from benchmark.devices import Precision
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.extraction import extract_features

    encoder = load_encoder("timm:resnet18").to(device)
    split, batch, repeats = image_split(64 if quick else 2048, 64), (16 if quick else 64), (1 if quick else 2)
    preprocessing = encoder.preprocessing.with_overrides({"input_size": 64})
    compute = {p: bare_forward(encoder, split, preprocessing, device, batch, p, repeats)
               for p in (Precision.FP32, Precision.BF16)}
    rows = []
    for workers in sorted({0, len(os.sched_getaffinity(0))}):
        loading = decode_only(split, preprocessing, workers, batch, repeats)
        for precision in (Precision.FP32, Precision.BF16):
            seconds, _ = best_of(repeats, lambda: extract_features(encoder, split, preprocessing, batch_size=batch,
                                                                   workers=workers, device=device,
                                                                   precision=precision))
            rate, ceiling = len(split) / seconds, min(compute[precision], loading)
            rows.append((f"extraction {precision}, {workers} workers (img/s)", rate, ceiling,
                         f"bare forward {precision} {compute[precision]:.0f}, decode-only {loading:.0f}"))
    return rows


def linear_rows(device: str, quick: bool) -> list[tuple[str, float, float, str]]:
    from benchmark.protocols import make_protocol
    from perf._features import synthetic_task

    n, d = (1000, 64) if quick else ((50000, 2048) if device.startswith("cuda") else (10000, 512))
    data = dataclasses.replace(synthetic_task(n, 1000, d), device=device)
    torch_s, fast = best_of(1, lambda: make_protocol("linear", {"solver": "fast"}).evaluate(data))
    rows = [("linear sweep, torch vs its floor (s)", torch_s, sweep_floor(data, sum(fast.details["sweep_iterations"])),
             "floor: every fit's iterations x one forward+backward pass")]
    if not device.startswith("cuda"):  # the reference solver runs on the CPU whatever the device
        scipy_s, slow = best_of(1, lambda: make_protocol("linear", {"solver": "reference"}).evaluate(data))
        rows.insert(0, (f"linear sweep {n}x{d}: reference (scipy) {scipy_s:.1f}s / torch {torch_s:.2f}s (x faster)",
                        scipy_s / torch_s, float("nan"), f"test {slow.value:.2f} vs {fast.value:.2f}"))
    return rows


def sweep_floor(data, iterations: int) -> float:
    """Seconds the sweep cannot go below: its L-BFGS iterations, each one logits GEMM and one gradient
    GEMM over the train features (measured once and multiplied)."""
    x = torch.as_tensor(data.train.x, device=data.device)
    w = torch.zeros(data.num_classes, x.shape[1], device=data.device)
    sync = synchronised(data.device)

    def one_pass():
        residual = torch.softmax(x @ w.T, 1)
        (residual.T @ x).sum().item()
        sync()

    seconds, _ = best_of(5, one_pass)
    return seconds * iterations


def finetune_rows(device: str, quick: bool) -> list[tuple[str, float, float, str]]:
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.inputs import concat_images
    from benchmark.protocols import Features, ModelTask, make_protocol

    encoder, steps, batch = load_encoder("timm:resnet18"), (4 if quick else 20), 32
    split = image_split(256, 64)
    preprocessing = encoder.preprocessing.with_overrides({"input_size": 64})
    idx = np.arange(256)
    data = ModelTask(Features(idx[:128], idx[:128] % 2), Features(idx[128:192], idx[128:192] % 2),
                     Features(idx[192:], idx[192:] % 2), 2, "top1", images=concat_images([split]), encoder=encoder,
                     preprocessing=preprocessing, device=device)
    protocol = make_protocol("finetune", {"steps": steps, "batch_size": batch, "lrs": [0.01], "regularisation": [0.0]})
    warm = make_protocol("finetune", {"steps": 1, "batch_size": batch, "lrs": [0.01], "regularisation": [0.0]})
    warm.fit(data, idx[:128], idx[:128] % 2, 0.01, 0.0)  # cuDNN's autotuning and the allocator, not timed
    sync = synchronised(device)
    start = time.perf_counter()
    protocol.fit(data, idx[:128], idx[:128] % 2, 0.01, 0.0)
    sync()
    copy_s = best_of(3, lambda: copy.deepcopy(encoder.model))[0]  # each fit copies the encoder first
    rate = steps / (time.perf_counter() - start - copy_s)
    return [("fine-tune steps/s (batch 32, 64 px, with augmentation)", rate,
             bare_step_rate(encoder, device, batch, steps),
             "ceiling: the same model, layout, loss and optimiser stepping on one ready batch")]


def bare_step_rate(encoder, device: str, batch: int, steps: int) -> float:
    """Steps/s of what a fine-tuning step computes (the encoder plus a linear head, channels_last images,
    cross-entropy, SGD with Nesterov momentum), on one batch already on the device: no loading at all.
    Timed over `steps` consecutive steps, as the fine-tune is."""
    from benchmark.backbones import output_width
    from benchmark.depthwise import small_map_depthwise_grad
    from benchmark.devices import IMAGE_LAYOUT
    from benchmark.protocols.finetune import Classifier

    backbone = copy.deepcopy(encoder.model)
    model = Classifier(backbone, output_width(backbone, 64), 2).to(device).train()
    images = torch.randn(batch, 3, 64, 64, device=device).contiguous(memory_format=IMAGE_LAYOUT)
    targets = torch.arange(batch, device=device) % 2
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    sync = synchronised(device)

    def step():
        with small_map_depthwise_grad(device):  # as the fine-tune's step
            loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps / (time.perf_counter() - start)


ROWS = {"extraction": extraction_rows, "linear": linear_rows, "finetune": finetune_rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS), help="which rows to measure")
    args = parser.parse_args()
    print(describe())
    print(f"device: {args.device}\n")
    print("| measurement | value | ceiling | value / ceiling | note |\n|---|---|---|---|---|")
    for rows in (ROWS[name] for name in args.only):
        for name, value, ceiling, note in rows(args.device, args.quick):
            ratio = value / ceiling if np.isfinite(ceiling) else float("nan")
            print(f"| {name} | {value:.2f} | {ceiling:.2f} | {ratio:.2f} | {note} |")


if __name__ == "__main__":
    main()
