"""One contract, run over every registered plugin (as timm's tests/test_models.py runs over
list_models()): protocols, training methods, encoder sources and datasets."""

import dataclasses
import inspect

import numpy as np
import pytest

from benchmark.data import DATASETS, load_split
from benchmark.encoders import ENCODER_SOURCES
from benchmark.errors import UserError
from benchmark.metrics import SCORERS
from benchmark.params import build_params, unconstrained_fields
from benchmark.protocols import PROTOCOLS, Protocol
from benchmark.training import METHODS, Method
from benchmark.vocab import FeatureKind, TaskType


def parameter_cases(registry, owner):
    return [(name, field.name) for name in registry.names()
            for field in dataclasses.fields(owner(registry.get(name)).Params)]


PROTOCOL_PARAMS = parameter_cases(PROTOCOLS, lambda cls: cls)
METHOD_PARAMS = parameter_cases(METHODS, lambda cls: cls)


@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_protocol_declares_what_the_runner_needs(name):
    cls = PROTOCOLS.get(name)
    assert issubclass(cls, Protocol) and cls.name == name and cls.version
    assert all(isinstance(kind, FeatureKind) for kind in cls.requires) and cls.requires
    assert all(isinstance(task, TaskType) for task in cls.tasks) and cls.tasks
    assert unconstrained_fields(cls.Params) == []
    assert cls().params == cls.Params()  # the defaults satisfy their own constraints


@pytest.mark.parametrize("name", METHODS.names())
def test_method_parameters_are_all_constrained(name):
    cls = METHODS.get(name)
    assert issubclass(cls, Method) and cls.name == name
    assert unconstrained_fields(cls.Params) == []
    build_params(cls.Params, {}, name)


@pytest.mark.parametrize("owner, field", PROTOCOL_PARAMS + METHOD_PARAMS)
def test_a_misspelt_or_invalid_parameter_is_one_message_naming_the_fix(owner, field):
    params = (PROTOCOLS.get(owner) if owner in PROTOCOLS else METHODS.get(owner)).Params
    with pytest.raises(UserError, match=f"Did you mean '{field}'"):
        build_params(params, {field + "x": 1}, owner)
    constraint = params.constraints[field]
    with pytest.raises(UserError, match=f"{owner}: parameter {field}=.* must be"):
        build_params(params, {field: constraint.invalid}, owner)


@pytest.mark.parametrize("name", ENCODER_SOURCES.names())
def test_encoder_source_is_a_builder_of_name_and_weights(name):
    builder = ENCODER_SOURCES.get(name)
    assert list(inspect.signature(builder).parameters)[:2] == ["name", "weights"]


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_spec_is_complete(name):
    spec = DATASETS.get(name)
    assert spec.name == name and spec.num_classes >= 1 and spec.splits and spec.metric in SCORERS
    assert isinstance(spec.task, TaskType)
    assert not spec.class_names or len(spec.class_names) == spec.num_classes
    assert spec.needs_root or spec.layout or spec.description  # a user learns where it comes from


OFFLINE = [name for name in DATASETS.names() if not DATASETS.get(name).needs_root]


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_dataset_loads_labels_it_declares(name):
    spec = DATASETS.get(name)
    split = load_split(spec, spec.splits[-1], None)
    assert len(split) > 0
    if spec.task == TaskType.MULTICLASS:
        assert 0 <= split.labels.min() and split.labels.max() < spec.num_classes
    elif spec.task == TaskType.SEGMENTATION:
        values = np.unique(split.labels)
        assert set(values.tolist()) <= set(range(spec.num_classes)) | {255}
