"""AR weight EMA against LlamaGen's update_ema loop written out here (utils/ema.py: mul_ then add_)."""

from __future__ import annotations

import torch

from vq_ar import ARTransformer, ar_config
from vq_ar.ema import WeightEMA, ema_weights_into


def _model(seed: int, tie: bool = False) -> ARTransformer:
    torch.manual_seed(seed)
    return ARTransformer(ar_config("nano", vocab_size=16, num_classes=2, grid=(2, 2), tie_embeddings=tie))


def test_ema_equals_llamagens_update_bit_for_bit() -> None:
    model, decay = _model(0), 0.9
    ema = WeightEMA(model, decay)
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}  # update_ema(ema, model, decay=0)
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        for name, param in model.named_parameters():
            reference[name].mul_(decay).add_(param.data, alpha=1 - decay)
    assert all(torch.equal(w, reference[n]) for n, w in ema.state_dict()["weights"].items())
    averaged = ema.averaged_copy(model)
    assert not averaged.training and all(torch.equal(p, reference[n]) for n, p in averaged.named_parameters())
    assert not torch.equal(model.output.weight, averaged.output.weight)  # the model itself is untouched


def test_state_round_trip_and_swap_into_a_model_with_tied_weights() -> None:
    model = _model(1, tie=True)
    ema = WeightEMA(model, 0.5)
    with torch.no_grad():
        model.tok_embeddings.weight.add_(1.0)
    ema.update(model)
    other = WeightEMA(_model(2, tie=True), 0.5)
    other.load_state_dict(ema.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(other.shadow, ema.shadow))
    target = _model(3, tie=True)
    assert ema_weights_into(target, {"ema": ema.state_dict()}) and not ema_weights_into(target, {})
    assert torch.equal(target.output.weight, ema.state_dict()["weights"]["tok_embeddings.weight"])  # tied: one tensor


NO_DROPOUT = {"token_dropout": 0.0, "resid_dropout": 0.0, "ffn_dropout": 0.0, "class_dropout": 0.0}


def _train(data, out, steps: int, stop_at: int | None = None, resume: bool = False, **kw):  # noqa: ANN001, ANN003, ANN202
    from vq_ar import TrainConfig, train

    config = TrainConfig(steps=steps, batch_size=4, lr=1e-2, min_lr_ratio=1.0, log_every=1, ckpt_every=100, **kw)
    return train(data, out, size="nano", model_overrides=NO_DROPOUT, config=config, stop_at=stop_at, resume=resume)


def test_training_with_ema_writes_the_average_of_the_raw_trajectory(tmp_path, write_token_shards) -> None:  # noqa: ANN001
    """A constant lr makes the first k steps of any run the same, so runs of 1..3 steps give the raw
    weights w1..w3 of a 3-step run; the EMA run's model.safetensors must be LlamaGen's average of w0..w3."""
    import numpy as np

    from vq_ar import load_ar
    from vq_ar.cli import _load_for_inference

    data = write_token_shards(tmp_path / "tokens", np.random.default_rng(0).integers(0, 16, (8, 2, 2)), np.arange(8) % 2,
                              codebook_size=16, num_classes=2)
    raw = [load_ar(_train(data, tmp_path / f"raw{k}", k).model).model.state_dict() for k in (1, 2, 3)]
    result = _train(data, tmp_path / "ema", 3, ema_decay=0.8)
    final = load_ar(result.model)
    torch.manual_seed(0)
    average = ARTransformer(final.config).state_dict()  # w0: train() seeds torch with config.seed before building
    for weights in raw:
        average = {k: v * 0.8 + weights[k] * (1 - 0.8) for k, v in average.items()}
    assert final.state["weights"] == "ema"
    for name, tensor in final.model.state_dict().items():
        torch.testing.assert_close(tensor, average[name], rtol=0, atol=1e-6)
    last = load_ar(result.checkpoint)
    assert all(torch.equal(last.model.state_dict()[k], raw[-1][k]) for k in raw[-1])  # resumable: the raw weights
    sampled = _load_for_inference(str(result.checkpoint), torch.device("cpu"), "fp32").model
    assert all(torch.equal(p, final.model.state_dict()[n]) for n, p in sampled.named_parameters())  # sampling uses the EMA


def test_resuming_with_ema_is_exact(tmp_path, write_token_shards) -> None:  # noqa: ANN001
    import numpy as np

    from vq_ar import load_ar

    data = write_token_shards(tmp_path / "tokens", np.random.default_rng(1).integers(0, 16, (8, 2, 2)), np.arange(8) % 2,
                              codebook_size=16, num_classes=2)
    whole = load_ar(_train(data, tmp_path / "whole", 4, ema_decay=0.9).model).model.state_dict()
    assert _train(data, tmp_path / "split", 4, ema_decay=0.9, stop_at=2).model is None
    resumed = _train(data, tmp_path / "split", 4, ema_decay=0.9, resume=True)
    assert all(torch.equal(v, whole[k]) for k, v in load_ar(resumed.model).model.state_dict().items())
