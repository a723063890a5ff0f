"""Turning a dataset split into features with one encoder: preprocess, batch, forward."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from benchmark.data.base import ImageSplit
from benchmark.encoders.base import Encoder
from benchmark.preprocessing import Preprocessing


class PreprocessedImages(Dataset):
    def __init__(self, split: ImageSplit, preprocessing: Preprocessing):
        self.split = split
        self.transform = preprocessing.transform()

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.split.image_tensor(index))


def extract_features(encoder: Encoder, split: ImageSplit, preprocessing: Preprocessing, *, batch_size: int = 64,
                     workers: int = 0, device: str = "cpu", desc: str = "extract") -> np.ndarray:
    """Pooled float32 features (N, D) in the split's order."""
    loader = DataLoader(PreprocessedImages(split, preprocessing), batch_size=batch_size, shuffle=False,
                        num_workers=workers, pin_memory=device.startswith("cuda"))
    encoder.to(device)
    chunks = [encoder.encode(batch.to(device, non_blocking=True)).cpu().numpy()
              for batch in tqdm(loader, desc=desc, unit="batch", leave=False, disable=None)]
    return np.concatenate(chunks).astype(np.float32, copy=False)
