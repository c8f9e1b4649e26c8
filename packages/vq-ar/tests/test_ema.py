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
