"""Prompt templates from CLIP's `data/prompts.md` (Radford et al. 2021) for the datasets we load,
keyed by our dataset names; anything else gets DEFAULT_TEMPLATES. ImageNet and its shifts get CLIP's 80
ImageNet templates, read from open_clip (`templates_for`)."""

import functools

from benchmark.groups import IMAGENET_SHIFTS, SHIFT_SOURCE

DEFAULT_TEMPLATES = ("a photo of a {}.",)

_PHOTO_18 = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.", "a low contrast photo of a {}.",
    "a high contrast photo of a {}.", "a bad photo of a {}.", "a good photo of a {}.", "a photo of a small {}.",
    "a photo of a big {}.", "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.", "a bad photo of the {}.",
    "a good photo of the {}.", "a photo of the small {}.", "a photo of the big {}.",
)
_CALTECH = (
    "a photo of a {}.", "a painting of a {}.", "a plastic {}.", "a sculpture of a {}.", "a sketch of a {}.",
    "a tattoo of a {}.", "a toy {}.", "a rendition of a {}.", "a embroidered {}.", "a cartoon {}.",
    "a {} in a video game.", "a plushie {}.", "a origami {}.", "art of a {}.", "graffiti of a {}.",
    "a drawing of a {}.", "a doodle of a {}.", "a photo of the {}.", "a painting of the {}.", "the plastic {}.",
    "a sculpture of the {}.", "a sketch of the {}.", "a tattoo of the {}.", "the toy {}.", "a rendition of the {}.",
    "the embroidered {}.", "the cartoon {}.", "the {} in a video game.", "the plushie {}.", "the origami {}.",
    "art of the {}.", "graffiti of the {}.", "a drawing of the {}.", "a doodle of the {}.",
)
_DTD = (
    "a photo of a {} texture.", "a photo of a {} pattern.", "a photo of a {} thing.", "a photo of a {} object.",
    "a photo of the {} texture.", "a photo of the {} pattern.", "a photo of the {} thing.", "a photo of the {} object.",
)
_MNIST = ('a photo of the number: "{}".',)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "cifar10": _PHOTO_18,
    "cifar100": _PHOTO_18,
    "caltech101": _CALTECH,
    "dtd": _DTD,
    "textures": _DTD,  # our DTD stand-in
    "eurosat": ("a centered satellite photo of {}.", "a centered satellite photo of a {}.",
                "a centered satellite photo of the {}."),
    "aircraft": ("a photo of a {}, a type of aircraft.", "a photo of the {}, a type of aircraft."),
    "flowers102": ("a photo of a {}, a type of flower.",),
    "food101": ("a photo of {}, a type of food.",),
    "pets": ("a photo of a {}, a type of pet.",),
    "voc2007": ("a photo of a {}.",),
    "stl10": ("a photo of a {}.", "a photo of the {}."),
    "sun397": ("a photo of a {}.", "a photo of the {}."),
    "mnist": _MNIST,
    "mnist5k": _MNIST,
    "digits": _MNIST,
}

IMAGENET_FAMILY = (SHIFT_SOURCE, *IMAGENET_SHIFTS)


def templates_for(dataset: str) -> tuple[str, ...]:
    if dataset in IMAGENET_FAMILY:
        return imagenet_templates()
    return TEMPLATES.get(dataset, DEFAULT_TEMPLATES)


@functools.cache
def imagenet_templates() -> tuple[str, ...]:
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)
