"""``generate(model, labels, cfg_scale=..., top_k=..., top_p=..., temperature=...)`` is the SamplingConfig form."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from vq_ar import SamplingConfig, ar_config, generate


@pytest.fixture
def model(random_model):  # noqa: ANN001, ANN201
    return random_model(ar_config("nano", vocab_size=48, num_classes=5, grid=(4, 4)), std=0.25)


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(3)


def test_keywords_equal_the_sampling_config(model) -> None:  # noqa: ANN001
    labels = torch.tensor([0, 1, 4])
    fields = {"cfg_scale": 2.5, "top_k": 7, "top_p": 0.9, "temperature": 0.8}
    by_config = generate(model, labels, sampling=SamplingConfig(**fields), generator=_seeded())
    by_keywords = generate(model, labels, generator=_seeded(), **fields)
    assert torch.equal(by_keywords, by_config)
    assert not torch.equal(by_keywords, generate(model, labels, generator=_seeded()))  # the keywords took effect


def test_keywords_override_the_config_fields_they_name(model) -> None:  # noqa: ANN001
    labels = torch.tensor([2, 3])
    base = SamplingConfig(cfg_scale=3.0, cfg_schedule="linear", top_k=5)
    mixed = generate(model, labels, sampling=base, top_k=1, generator=_seeded())
    expected = SamplingConfig(cfg_scale=3.0, cfg_schedule="linear", top_k=1)
    assert torch.equal(mixed, generate(model, labels, sampling=expected, generator=_seeded()))
    with pytest.raises(ValidationError):
        generate(model, labels, top_p=0.0)
