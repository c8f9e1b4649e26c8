"""Fault injection: two tokenizers of one preset with other weights (seeds 0 and 1) are never mixed.

Their configs are identical, so a config hash cannot tell them apart; the token-space identity
(config + encoder/codebook weights) must.  Token shards of tokenizer A are refused by tokenizer B in
``vq-tok decode``, by an AR model trained on A in ``vq-ar train --resume``, ``vq-ar validate`` and
``vq-ar sample --tokenizer B``, and ``vq-ar sample`` refuses the default decoder when A's file was
replaced by B's.  Each refusal is one line naming both sides.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vq_ar.cli import main as ar_main
from vq_tokenizers import load_tokenizer
from vq_tokenizers.cli import main as tok_main


def _one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    message = result.output.strip() or str(result.exception)
    assert len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@pytest.fixture(scope="module")
def two_tokenizers(tmp_path_factory: pytest.TempPathFactory, tokenized_world) -> dict[str, Path]:  # noqa: ANN001
    return tokenized_world(tmp_path_factory.mktemp("identity"), {"a": 0, "b": 1}, ar_tokens="a")


def test_same_config_other_weights_are_two_token_spaces(two_tokenizers: dict[str, Path]) -> None:
    a, b = load_tokenizer(two_tokenizers["a"]), load_tokenizer(two_tokenizers["b"])
    assert a.config == b.config and a.token_space_hash() != b.token_space_hash()
    assert (two_tokenizers["tokens_a"] / "manifest.json").read_text().count(a.token_space_hash()) == 1


def test_vq_tok_decode_refuses_the_other_tokenizer(two_tokenizers: dict[str, Path]) -> None:
    t = two_tokenizers
    result = CliRunner().invoke(tok_main, ["decode", str(t["tokens_a"]), "--ckpt", str(t["b"]), "--out", str(t["tmp"] / "png")])
    _one_line_error(result, f"tokenizer {t['b']} has token space", str(t["tokens_a"] / "manifest.json"), str(t["a"]), "re-tokenize")
    assert not (t["tmp"] / "png").exists() or not any((t["tmp"] / "png").iterdir())


def test_vq_ar_validate_and_resume_refuse_shards_of_the_other_tokenizer(two_tokenizers: dict[str, Path]) -> None:
    t = two_tokenizers
    model = t["ar"] / "model.safetensors"
    validate = CliRunner().invoke(ar_main, ["validate", "--ckpt", str(model), "--data", str(t["tokens_b"]), "--n", "1"])
    _one_line_error(validate, f"AR checkpoint {model}", str(t["tokens_b"] / "manifest.json"), str(t["b"]), str(t["a"]), "new --out")
    resume = CliRunner().invoke(
        ar_main, ["train", "--data", str(t["tokens_b"]), "--out", str(t["ar"]), "--size", "nano", "--steps", "4", "--batch-size", "4",
                  "--log-every", "1", "--resume"],
    )  # fmt: skip
    _one_line_error(resume, str(t["tokens_b"] / "manifest.json"), str(t["a"]))


def test_vq_ar_sample_refuses_the_other_decoder_and_a_replaced_file(two_tokenizers: dict[str, Path]) -> None:
    t = two_tokenizers
    model = t["ar"] / "model.safetensors"
    args = ["sample", "--ckpt", str(model), "--class", "0", "--n", "1", "--device", "cpu"]
    other = CliRunner().invoke(ar_main, [*args, "--out", str(t["tmp"] / "s1"), "--tokenizer", str(t["b"])])
    _one_line_error(other, f"tokenizer {t['b']}", "token space", str(t["a"]))
    # the AR model records A's path: A decodes; B's weights under A's name (same config) are refused
    loaded = CliRunner().invoke(ar_main, [*args, "--out", str(t["tmp"] / "s2")])
    assert loaded.exit_code == 0, loaded.output  # A itself decodes
    backup = t["tmp"] / "a-backup.safetensors"
    shutil.copy(t["a"], backup)
    try:
        shutil.copy(t["b"], t["a"])
        swapped = CliRunner().invoke(ar_main, [*args, "--out", str(t["tmp"] / "s3")])
        _one_line_error(swapped, f"tokenizer {t['a']}", "replaced since")
    finally:
        shutil.copy(backup, t["a"])
