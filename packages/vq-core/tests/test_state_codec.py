"""The JSON + tensors codec gives back exactly what training state holds: types, values, RNG streams."""

from __future__ import annotations

import json
import math
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vq_core import StrictConfig, load_checkpoint, save_checkpoint
from vq_core.state_codec import StateCodecError, decode_state, encode_state


class Cfg(StrictConfig):
    width: int = 3


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact structural equality: same types (tuple is not list, bool is not int), same bits."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), where  # keys, their types and their order
        assert [type(k) for k in a] == [type(k) for k in b], where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
        return
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a.contiguous().flatten().view(torch.uint8), b.contiguous().flatten().view(torch.uint8)), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    elif isinstance(a, float) or isinstance(a, np.floating):
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b)), where
    else:
        assert a == b, where


NESTED: dict[Any, Any] = {
    "ints": [0, -1, 2**70, True, False],
    "floats": (0.1, -0.0, float("inf"), float("-inf"), float("nan"), 1e-308),
    "none": None,
    "text": "ünïcode $not-a-tag",
    0: {"int key": 1},
    (1, "a"): "tuple key",
    None: "none key",
    "$dollar": {"$tensor": "looks like a tag but is data"},
    "nested": [[(), []], {}, {"deep": ({"x": (1,)},)}],
    "tensors": [
        torch.arange(6, dtype=torch.int64).view(2, 3),
        torch.tensor(3.5),
        torch.zeros(0, 4),
        torch.randn(3, dtype=torch.bfloat16),
        torch.tensor([True, False]),
        torch.randn(4, 4).t(),  # non-contiguous
    ],
    "arrays": [
        np.arange(5, dtype=np.uint32),
        np.array([[1.5, np.nan], [np.inf, -0.0]], dtype=np.float16),
        np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)),
        np.zeros((0,), dtype=np.int8),
        np.array(True),
    ],
    "numpy scalars": [np.float64(1.25), np.int64(-3), np.uint8(255), np.bool_(True), np.float32(np.nan)],
    "ordered": OrderedDict([("b", 1), ("a", 2)]),
}


def test_nested_state_round_trips_exactly_through_json() -> None:
    skeleton, tensors = encode_state(NESTED)
    text = json.dumps(skeleton, allow_nan=False)  # strict JSON: no NaN literals, no python objects
    back = decode_state(json.loads(text), tensors)
    expected = dict(NESTED)
    expected["ordered"] = dict(NESTED["ordered"])  # OrderedDict comes back as a dict (same keys, same order)
    assert_same(back, expected)


def test_state_round_trips_through_a_checkpoint_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", family="t", config=Cfg(), model={"w": torch.ones(2)}, state=NESTED)
    back = load_checkpoint(path).state
    expected = dict(NESTED)
    expected["ordered"] = dict(NESTED["ordered"])
    assert_same(back, expected)


def test_optimizer_and_scheduler_state_resume_the_same_trajectory(tmp_path: Path) -> None:
    def make() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
        opt = torch.optim.AdamW([{"params": model[0].parameters(), "weight_decay": 0.1}, {"params": model[1].parameters()}], betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
        return model, opt, sched

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, seed: int) -> None:
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed))
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        sched.step()

    model, opt, sched = make()
    for s in range(3):
        step(model, opt, sched, s)
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    path = save_checkpoint(tmp_path / "o.safetensors", family="t", config=Cfg(), model=model.state_dict(), state=state)
    ckpt = load_checkpoint(path)
    assert_same(ckpt.state["optimizer"]["param_groups"], opt.state_dict()["param_groups"])

    model2, opt2, sched2 = make()
    model2.load_state_dict(ckpt.model)
    opt2.load_state_dict(ckpt.state["optimizer"])
    sched2.load_state_dict(ckpt.state["scheduler"])
    for s in range(3, 6):
        step(model, opt, sched, s)
        step(model2, opt2, sched2, s)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_rng_states_round_trip(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.random(), np.random.rand(), torch.rand(1)  # move away from a fresh seed's state
    np.random.randn()  # numpy caches a gaussian: has_gauss = 1 in its state
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    path = save_checkpoint(tmp_path / "r.safetensors", family="t", config=Cfg(), model={}, state={"rng": state})
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    rng = load_checkpoint(path).state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    got = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


@pytest.mark.parametrize(
    "bad, where",
    [({"a": [1, object()]}, r"state\['a'\]\[1\]"), ({"f": len}, r"state\['f'\]"), ({"o": np.array([None])}, "object")],
)
def test_values_pickle_would_smuggle_are_refused_naming_where(bad: Any, where: str) -> None:
    with pytest.raises(StateCodecError, match=where):
        encode_state(bad)


def test_malformed_skeleton_is_refused() -> None:
    with pytest.raises(StateCodecError, match="does not hold"):
        decode_state({"$tensor": "state/9"}, {})
    with pytest.raises(StateCodecError, match="unknown tag"):
        decode_state({"$exec": "os.system"}, {})
