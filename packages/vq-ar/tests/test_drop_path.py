"""Drop path (LlamaGen's ``--drop-path-rate``) against LlamaGen's ``utils/drop_path.py`` and
``TransformerBlock`` written here from its code: per-sample Bernoulli(keep) masks scaled by 1/keep,
one draw per residual branch (attention, then feed-forward), rates ``linspace(0, rate, n_layer)``."""

from __future__ import annotations

import pytest
import torch

from vq_ar import ARTransformer, ar_config


def llamagen_drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    random_tensor = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
    random_tensor.div_(keep_prob)
    return x * random_tensor


def _config(rate: float, **kw):  # noqa: ANN003
    return ar_config("nano", vocab_size=16, num_classes=2, grid=(2, 2), n_layer=4, drop_path_rate=rate,
                     token_dropout=0.0, resid_dropout=0.0, ffn_dropout=0.0, attn_dropout=0.0, **kw)


def test_rates_follow_llamagens_linspace() -> None:
    model = ARTransformer(_config(0.3))
    expected = [x.item() for x in torch.linspace(0, 0.3, 4)]
    assert [block.drop_path for block in model.layers] == expected and expected[0] == 0.0


def test_block_matches_llamagens_transformer_block_in_training() -> None:
    torch.manual_seed(0)
    model = ARTransformer(_config(0.5)).double().train()
    block = model.layers[-1]  # rate 0.5
    x = torch.randn(64, 5, 64, dtype=torch.float64)
    rope = model._rope_table(x)[:, :5]
    torch.manual_seed(1)
    out = block(x, rope, None, 0)
    torch.manual_seed(1)
    h = x + llamagen_drop_path(block.attention(block.attention_norm(x), rope, None, 0), 0.5, True)
    expected = h + llamagen_drop_path(block.feed_forward(block.ffn_norm(h)), 0.5, True)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    kept = [torch.equal(out[i], x[i]) for i in range(64)]  # both branches dropped for about a quarter of the samples
    assert 0 < sum(kept) < 64


def test_eval_ignores_drop_path_and_gpt2_refuses_it() -> None:
    torch.manual_seed(0)
    dropped, plain = ARTransformer(_config(0.5)).eval(), ARTransformer(_config(0.0)).eval()
    plain.load_state_dict(dropped.state_dict())
    labels, tokens = torch.tensor([0, 1]), torch.randint(0, 16, (2, 3))
    with torch.no_grad():
        torch.testing.assert_close(dropped(labels, tokens), plain(labels, tokens), rtol=0, atol=0)
    with pytest.raises(ValueError, match="gpt2 has no drop path"):
        _config(0.1, backbone="gpt2", rope="1d", rope_class="sequence")
