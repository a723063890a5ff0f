"""`plan --estimate`: each cell's predicted wall time for one encoder on one device, before any data is
downloaded. The model has two inputs, both printed:
- how many images each cell sends through the encoder (`benchmark.cost`, from the official split sizes),
  an extraction counted at the first cell that reads it (the others find it in the cache);
- the encoder's throughput on the device at the cell's input size: extraction images/s (the real
  extraction forward, at the run's batch and precision) and training images/s (forward, backward and an
  SGD step at the fine-tune batch), measured once and cached in CACHE_DIR/throughput.json.
- the protocol's own time (solvers, episodes, searches) of a feature cell, where the results store holds
  that cell for other encoders: their median (it hardly depends on the encoder; its features' width
  aside). With an empty store it is left out, and said so.
Decoding is not in the model; where a stored row measured a fine-tune cell, the estimate's error is shown.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.config import Suite
from benchmark.cost import augmented_images, dataset_images, task_of, trained_images
from benchmark.depthwise import small_map_depthwise_grad
from benchmark.devices import Precision
from benchmark.encoders import load_encoder
from benchmark.pipeline.extraction import HalvingEncoder
from benchmark.protocols import PROTOCOLS, make_protocol
from benchmark.vocab import EncoderWork, FeatureKind

MIN_SECONDS = 1.0  # each throughput is timed over at least this long (and at least 2 batches)


@dataclass(frozen=True)
class Throughput:
    extract_per_s: float
    train_per_s: float | None  # None: the encoder has no trainable network (pixels)
    device: str
    measured: str


@dataclass(frozen=True)
class CellEstimate:
    column: str
    dataset: str
    input_size: int
    extraction_images: int
    training_images: int
    seconds: float  # the images through the encoder at the measured throughput
    protocol_seconds: float = 0.0  # the protocol's own time, where other encoders' rows measured it

    @property
    def total(self) -> float:
        return self.seconds + self.protocol_seconds


def timed(step, batch: int) -> float:
    """Images per second of `step()` (one batch), after a warm-up call, waiting for the device."""
    step()
    done, start = 0, time.perf_counter()
    while done < 2 * batch or time.perf_counter() - start < MIN_SECONDS:
        step()
        done += batch
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def measure(spec: str, device: str, input_size: int, batch: int, train_batch: int, precision: Precision) -> Throughput:
    encoder = load_encoder(spec)
    encoder.model.to(device)
    encode = HalvingEncoder(encoder, batch, FeatureKind.POOLED, precision, device)
    images = torch.randn(batch, 3, input_size, input_size, device=device)
    with torch.no_grad():
        extract = timed(lambda: encode(images), batch)
    train = measure_training(encoder, device, input_size, train_batch) if encoder.trainable else None
    return Throughput(extract, train, device_name(device), time.strftime("%Y-%m-%d"))


def measure_training(encoder, device: str, input_size: int, batch: int) -> float:
    from benchmark.backbones import output_width
    from benchmark.protocols.finetune import Classifier, image_module

    backbone = copy.deepcopy(image_module(encoder.model))
    model = Classifier(backbone, output_width(backbone, input_size), 10).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
    images = torch.randn(batch, 3, input_size, input_size, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step():
        optimizer.zero_grad()
        with small_map_depthwise_grad(device):  # as the fine-tune protocol trains
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    return timed(step, batch)


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()}, {torch.get_num_threads()} threads"


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


MEASUREMENT = "v2"  # v2: the training step takes the fine-tune's small-map depthwise gradient (faster on CPUs)


def cached_throughput(cache_dir: Path, spec: str, device: str, input_size: int, batch: int, train_batch: int,
                      precision: Precision) -> tuple[Throughput, bool]:
    """The cached measurement for these settings, else a new one (saved). Returns it and whether it was new."""
    path = cache_dir / "throughput.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    key = (f"{spec}|{device}|{device_name(device)}|{input_size}px|batch {batch}|train batch {train_batch}|{precision}"
           f"|{MEASUREMENT}")
    if key in known:
        return Throughput(**known[key]), False
    result = measure(spec, device, input_size, batch, train_batch, precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**known, key: asdict(result)}, indent=1))
    return result, True


def cell_estimates(suite: Suite, rates: dict[int, Throughput], capabilities: tuple[FeatureKind, ...]
                   ) -> list[CellEstimate]:
    """Every cell of the suite that an encoder with `capabilities` runs (the others are skipped by the
    run too); `rates` maps each input size the suite uses to the encoder's throughput."""
    seen, estimates = set(), []
    for dataset, options in suite.datasets.items():
        for task in suite.tasks(dataset):
            protocol = make_protocol(task.kind, task.params)
            if not set(protocol.requires) <= set(capabilities):
                continue
            size = input_size(suite, task.protocol, dataset)
            trained, extracted, work = 0, 0, protocol.encoder_work()
            if work == EncoderWork.FORWARD:  # linear_sgd re-encoding augmented images: forward passes
                extracted = augmented_images(task, dataset, options)
                seconds = extracted / rates[size].extract_per_s
            elif work == EncoderWork.TRAINING:
                trained = trained_images(task)
                seconds = trained / rates[size].train_per_s if rates[size].train_per_s else float("nan")
            else:
                read = (dataset, repr(sorted(task.preprocessing.items())))
                extracted = 0 if read in seen else dataset_images(dataset, options)
                seen.add(read)
                seconds = extracted / rates[size].extract_per_s
            estimates.append(CellEstimate(task.protocol, dataset, size, extracted, trained, seconds))
    return estimates


def input_size(suite: Suite, column: str, dataset: str) -> int:
    task = task_of(suite, column, dataset)
    overrides = {**suite.preprocessing, **suite.datasets[dataset].get("preprocessing", {}), **task.preprocessing}
    return int(overrides.get("input_size", 224))


def suite_input_sizes(suite: Suite) -> list[int]:
    return sorted({input_size(suite, t.protocol, d) for d in suite.datasets for t in suite.tasks(d)})


def fine_tune_batch(suite: Suite) -> int:
    """The batch the suite fine-tunes at (the largest, if columns differ), for the training throughput."""
    batches = [PROTOCOLS.get(t.kind).Params(**t.params).batch_size for d in suite.datasets for t in suite.tasks(d)
               if make_protocol(t.kind, t.params).encoder_work() == EncoderWork.TRAINING]
    return max(batches, default=64)


def with_protocol_times(cells: list[CellEstimate], rows, label: str) -> list[CellEstimate]:
    """Each feature cell plus the median seconds its protocol took for the other encoders in `rows`."""
    if rows is None or rows.empty:
        return cells
    others = rows[rows["encoder"] != label].groupby(["protocol", "dataset"])["seconds"].median()
    return [cell if cell.training_images else
            dataclasses.replace(cell, protocol_seconds=float(others.get((cell.column, cell.dataset), 0.0)))
            for cell in cells]


def model_costs(encoder, input_size: int) -> dict[str, float]:
    """DINO's cost columns that need no timing: parameters (millions) of the image network and GFLOPs of
    one image's forward at `input_size` (torch's FlopCounterMode: a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark.protocols.finetune import image_module

    network = image_module(encoder.model)
    parameters = sum(p.numel() for p in network.parameters())
    device = next(network.parameters()).device if parameters else torch.device("cpu")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        encoder.encode(torch.zeros(1, 3, input_size, input_size, device=device))
    return {"parameters_m": round(parameters / 1e6, 2), "gflops": round(counter.get_total_flops() / 1e9, 3),
            "gflops_input_px": input_size}
