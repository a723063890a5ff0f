"""Published groups of datasets whose means a benchmark reports beside its cells: VTAB-1k's natural,
specialized and structured tasks (Zhai et al. 2019), and its headline, the mean over all 19 tasks; and
ImageNet's natural distribution shifts (Taori et al. 2020). Shared by the dataset definitions (`data.vtab`,
`data.imagenet_shift`) and the report (`results.groups`, `results.shift`), neither importing the other."""

from __future__ import annotations

from enum import StrEnum


class VtabGroup(StrEnum):
    NATURAL = "natural"
    SPECIALIZED = "specialized"
    STRUCTURED = "structured"


VTAB_GROUPS: dict[VtabGroup, tuple[str, ...]] = {  # VTAB-1k task folders, in the paper's order
    VtabGroup.NATURAL: ("cifar", "caltech101", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397"),
    VtabGroup.SPECIALIZED: ("patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"),
    VtabGroup.STRUCTURED: ("clevr_count", "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori",
                           "smallnorb_azi", "smallnorb_ele"),
}


def vtab_dataset(folder: str) -> str:
    """The dataset name of a VTAB-1k task folder."""
    return f"vtab_{folder}"


def vtab_group(folder: str) -> VtabGroup:
    return next(group for group, folders in VTAB_GROUPS.items() if folder in folders)


SHIFT_SOURCE = "imagenet"  # the dataset whose train split fits the heads that the shifts score
IMAGENET_SHIFTS = ("imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r")  # Taori et al.'s natural shifts
