"""Token-space identity: the config *and* the weights that decide tokens, for every family.

Two tokenizers of one preset trained (here: initialised) with other seeds give other tokens for the
same images, so their identities must differ; weights that do not decide tokens (decoder, usage
statistics) must not change it, so a pixel decoder over a frozen tokenizer keeps the tokenizer's.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from vq_tokenizers import PixelDecoderTokenizer, build_tokenizer, get_preset, load_tokenizer, save_tokenizer
from vq_tokenizers.token_space import tensors_digest

pytestmark = pytest.mark.usefixtures("single_thread")

CONV_FAMILIES = ("vqgan", "cvq", "fsq")


def _tiny(family: str, seed: int):
    torch.manual_seed(seed)
    return build_tokenizer(family, get_preset("tiny", family).model).eval()


@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_same_preset_other_seed_is_another_token_space(family: str) -> None:
    a, a_again, b = _tiny(family, 0), _tiny(family, 0), _tiny(family, 1)
    assert a.config == b.config  # the config hash alone cannot tell them apart
    images = torch.rand(4, 3, a.image_size, a.image_size) * 2 - 1
    assert not torch.equal(a.encode(images), b.encode(images))  # and they really tokenize differently
    assert a.token_space_hash() == a_again.token_space_hash() != b.token_space_hash()


@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_encoder_and_codebook_count_decoder_and_usage_statistics_do_not(family: str) -> None:
    model = _tiny(family, 0)
    before = model.token_space_hash()

    def changed(tensor: torch.Tensor) -> str:
        """The identity with ``tensor`` shifted by one, then ``tensor`` restored bit for bit."""
        saved = tensor.detach().clone()
        with torch.no_grad():
            tensor.add_(1.0)
            digest = model.token_space_hash()
            tensor.copy_(saved)
        return digest

    assert changed(model.decoder.conv_in.weight) == before
    assert changed(next(model.post_quant_conv.parameters())) == before
    if family != "fsq":
        assert changed(model.quantizer.usage_ema) == before
        assert changed(model.quantizer.codebook) != before
    assert changed(next(model.encoder.parameters())) != before  # FSQ too: no codebook, but a learned encoder
    assert changed(next(model.quant_conv.parameters())) != before
    assert model.token_space_hash() == before


@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_identity_survives_the_checkpoint_round_trip(family: str, tmp_path) -> None:
    model = _tiny(family, 3)
    loaded = load_tokenizer(save_tokenizer(model, tmp_path / "tok.safetensors"))
    assert loaded.token_space_hash() == model.token_space_hash()


def test_pixel_decoder_shares_its_source_identity_and_no_other() -> None:
    source, other = _tiny("vqgan", 0), _tiny("vqgan", 1)
    decoder = PixelDecoderTokenizer.from_source(source, ch=32, ch_mult=(1, 1, 1), num_res_blocks=1, z_channels=32)
    assert decoder.token_space_hash() == source.token_space_hash() != other.token_space_hash()
    with torch.no_grad():
        decoder.decoder.conv_in.weight.add_(1.0)  # training the decoder leaves the token space alone
    assert decoder.token_space_hash() == source.token_space_hash()


def _reference_digest(tensors: dict[str, torch.Tensor], prefix: str = "") -> str:
    """The documented layout written out independently: per sorted name a length-prefixed
    JSON header [name, dtype, shape], then the C-order bytes (through numpy, float64 path for floats)."""
    digest = hashlib.sha256(prefix.encode())
    for name in sorted(tensors):
        array = tensors[name].detach().cpu().numpy()
        header = json.dumps([name, str(array.dtype), list(array.shape)]).encode()
        digest.update(len(header).to_bytes(8, "little") + header + array.tobytes(order="C"))
    return digest.hexdigest()


def test_tensor_digest_matches_the_documented_layout_and_is_layout_independent() -> None:
    torch.manual_seed(0)
    tensors = {"b.weight": torch.randn(3, 5), "a.bias": torch.randn(7).double(), "a.count": torch.arange(4), "flag": torch.tensor(True)}
    assert tensors_digest(tensors, prefix="p") == _reference_digest(tensors, prefix="p")
    reordered = dict(reversed(list(tensors.items())))
    transposed = {**tensors, "b.weight": tensors["b.weight"].t().contiguous().t()}  # same values, other strides
    assert not transposed["b.weight"].is_contiguous()
    assert tensors_digest(reordered) == tensors_digest(transposed) == tensors_digest(tensors)
    assert tensors_digest({**tensors, "b.weight": tensors["b.weight"].double()}) != tensors_digest(tensors)  # dtype counts
    assert tensors_digest({**tensors, "b.weight": tensors["b.weight"].reshape(5, 3)}) != tensors_digest(tensors)  # shape counts
    renamed = {("c.weight" if k == "b.weight" else k): v for k, v in tensors.items()}
    assert tensors_digest(renamed) != tensors_digest(tensors)  # names count
