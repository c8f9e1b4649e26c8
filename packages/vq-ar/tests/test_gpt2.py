"""The seed's GPT-2 AR (configs/ar/c2i_gpt2_medium(_cfg)_imagenet_ddp.py, configs/ar/transformers/gpt2.py,
vq/algorithms/ar/transformers/{gpt,hf}.py, vq/tasks/sequence_modeling/models/c2i.py): presets, initialisation
from a local GPT-2 (a tiny random one saved with save_pretrained), and the model the seed builds from it
(``from_pretrained`` + ``resize_token_embeddings`` over [classes, null class, codes]) as the reference.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from transformers import GPT2Config, GPT2LMHeadModel

from vq_ar import SamplingConfig, ar_config, count_parameters, generate, get_preset, load_ar, lr_factor
from vq_ar.cli import main
from vq_ar.gpt2 import GPT2AR
from vq_ar.model import build_ar_model


def gpt2_param_count(vocab: int, positions: int, d: int, layers: int) -> int:
    """GPT2LMHeadModel with a tied head: wte + wpe + blocks (ln, c_attn, c_proj, ln, c_fc, c_proj) + ln_f."""
    block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    return vocab * d + positions * d + layers * block + 2 * d


@pytest.mark.parametrize(("name", "label_dropout", "cfg"), [("c2i_gpt2_medium", 0.0, 1.0), ("c2i_gpt2_medium_cfg", 0.1, 1.75)])
def test_seed_gpt2_presets(name: str, label_dropout: float, cfg: float) -> None:
    preset = get_preset(name)
    model = preset.model_config()
    assert model.backbone == "gpt2" and (model.n_layer, model.dim, model.n_head, model.max_positions) == (24, 1024, 16, 1024)
    assert (model.token_dropout, model.attn_dropout, model.resid_dropout, model.norm_eps) == (0.1, 0.1, 0.1, 1e-5)  # gpt2-medium config
    assert model.tie_embeddings and model.class_dropout == label_dropout and model.pretrained is None
    assert gpt2_param_count(50257, 1024, 1024, 24) == 354_823_168  # gpt2-medium as released
    assert count_parameters(model) == gpt2_param_count(1000 + 1 + 8192, 1024, 1024, 24)  # vocabulary resized as the seed
    train = preset.train_config()  # configs/ar/runner.py, as for the Llama recipe
    assert (train.lr, train.betas, train.weight_decay, train.weight_decay_on, train.eps) == (1e-4, (0.9, 0.98), 0.2, "all", 1e-6)
    assert (train.steps, train.batch_size, train.grad_clip) == (260_000, 96, 0.0) and lr_factor(train.steps, train) == 0.0
    sampling = preset.sampling_config()
    assert (sampling.top_k, sampling.top_p, sampling.temperature, sampling.cfg_scale) == (600, 0.92, 1.0, cfg)
    assert any(s.endswith("configs/ar/transformers/gpt2.py") for s in preset.sources)
    assert not any(s.endswith("transformers/llama.py") for s in preset.sources)


@pytest.fixture
def tiny_gpt2(tmp_path):
    """A random GPT-2 with a 100-token text vocabulary, saved as transformers saves gpt2-medium."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # non-trivial norms and biases
    model.save_pretrained(tmp_path / "gpt2-tiny")
    return tmp_path / "gpt2-tiny"


def _config(pretrained, **kw):  # noqa: ANN001, ANN003
    fields = {"backbone": "gpt2", "rope": "1d", "rope_class": "sequence", "max_positions": 32, "tie_embeddings": True,
              "n_layer": 2, "dim": 32, "n_head": 2, "pretrained": str(pretrained), **kw}
    return ar_config("nano", vocab_size=16, num_classes=3, grid=(4, 4), **fields)


def test_initialised_from_a_local_gpt2_as_the_seed_and_logits_match_it(tiny_gpt2) -> None:
    model = build_ar_model(_config(tiny_gpt2)).eval()
    assert isinstance(model, GPT2AR)
    reference = GPT2LMHeadModel.from_pretrained(tiny_gpt2, local_files_only=True).eval()
    text_rows = reference.transformer.wte.weight[:20].detach().clone()
    reference.resize_token_embeddings(3 + 1 + 16)  # the seed's HFTransformer: classes + null class + codes
    torch.testing.assert_close(model.tok_embeddings.weight, text_rows)  # truncated, not re-initialised
    assert model.gpt2.lm_head.weight is model.tok_embeddings.weight

    labels, tokens = torch.tensor([0, 2, 3]), torch.randint(0, 16, (3, 16))  # label 3: the null class
    with torch.no_grad():
        ids = torch.cat([labels[:, None], tokens[:, :-1] + 4], dim=1)  # C2IData: codes after the 3 + 1 class ids
        expected = reference(ids).logits[..., 4:]
        torch.testing.assert_close(model(labels, tokens[:, :-1]), expected, rtol=1e-5, atol=1e-5)


def test_cached_and_uncached_sampling_agree_with_guidance(tiny_gpt2) -> None:
    model = build_ar_model(_config(tiny_gpt2)).eval()
    sampling = SamplingConfig(cfg_scale=1.75, top_k=8, top_p=0.92)
    runs = []
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(3)
        runs.append(generate(model, torch.tensor([0, 1, 2]), sampling=sampling, generator=generator, use_cache=use_cache))
    assert runs[0].shape == (3, 16) and torch.equal(runs[0], runs[1]) and int(runs[0].max()) < 16


def test_refuses_a_pretrained_gpt2_of_another_shape(tiny_gpt2) -> None:
    with pytest.raises(ValueError, match=r"\(32, 2, 2, 32\) but the AR config needs \(32, 2, 2, 64\)"):
        build_ar_model(_config(tiny_gpt2, max_positions=64))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_ar_model(_config(tiny_gpt2.parent / "missing"))


def test_train_two_steps_with_the_gpt2_preset_and_sample_the_checkpoint(tmp_path, tiny_gpt2, write_token_shards) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=1024, n_embd=64, n_layer=2, n_head=4)).save_pretrained(tmp_path / "gpt2-nano")
    tokens = np.random.default_rng(0).integers(0, 32, size=(8, 4, 4))
    data = write_token_shards(tmp_path / "tokens", tokens, np.arange(8) % 2, codebook_size=32, num_classes=2)
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "c2i_gpt2_medium_cfg", "--size", "nano",
            "--set", f"pretrained={tmp_path / 'gpt2-nano'}", "--steps", "2", "--batch-size", "4", "--log-every", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "run" / "train.json").read_text())["model"]
    assert (model["backbone"], model["n_layer"], model["dim"], model["class_dropout"]) == ("gpt2", 2, 64, 0.1)
    loaded = load_ar(tmp_path / "run" / "model.safetensors")
    assert isinstance(loaded.model, GPT2AR)
    sample = generate(loaded.model, torch.tensor([0, 1]), sampling=SamplingConfig(cfg_scale=1.75), generator=torch.Generator().manual_seed(0))
    assert sample.shape == (2, 16) and int(sample.max()) < 32
