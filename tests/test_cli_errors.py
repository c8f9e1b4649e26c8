"""User errors of vq-tok and vq-ar are one ``Error:`` line naming the real flag, never a traceback.

Each case is something a new user does: a bad config field, a missing file, the wrong family or
preset, a malformed ``--set``, a batch larger than the data, and a resume whose settings changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vq_ar.cli import main as vq_ar
from vq_data.cli import main as vq_data
from vq_tokenizers.cli import main as vq_tok


def _invoke(cli, args: list[str]) -> Result:  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [str(a) for a in args])


def _error_line(result: Result, exit_codes: tuple[int, ...] = (1,)) -> str:
    """The one ``Error:`` line of a refused command (click's usage errors add their usage lines)."""
    assert result.exit_code in exit_codes, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    if result.exit_code == 1:
        assert result.output.strip() == errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """18 bundled photos at 16 px, a 2-step tokenizer run at batch 4 (mid-epoch), its tokens, a 2-step AR run."""
    root = tmp_path_factory.mktemp("cli_errors")
    images, tok_run, tokens, ar_run = root / "images", root / "tok", root / "tokens", root / "ar"
    assert _invoke(vq_data, ["pack", "bundled", "--out", images, "--image-size", 16, "--samples-per-shard", 8]).exit_code == 0
    trained = _invoke(vq_tok, ["train", "--family", "vqgan", "--data", images, "--out", tok_run, "--steps", 2, "--batch-size", 4])
    assert trained.exit_code == 0, trained.output
    tokenized = _invoke(vq_tok, ["tokenize", images, "--ckpt", tok_run / "tokenizer.safetensors", "--out", tokens])
    assert tokenized.exit_code == 0, tokenized.output
    ar = _invoke(vq_ar, ["train", "--data", tokens, "--out", ar_run, "--size", "nano", "--steps", 2, "--batch-size", 4, "--ckpt-every", 1])
    assert ar.exit_code == 0, ar.output
    return {"images": images, "tok": tok_run, "tokens": tokens, "ar": ar_run, "root": root}


def test_vq_tok_bad_config_field_names_it(runs: dict[str, Path]) -> None:
    args = ["train", "--family", "vqgan", "--data", runs["images"], "--out", runs["root"] / "t1", "--steps", 1]
    line = _error_line(_invoke(vq_tok, [*args, "--set", "quantizer.nonexistent=3"]))
    assert "quantizer.nonexistent" in line


def test_vq_tok_unknown_family_and_preset_name_the_flag(runs: dict[str, Path]) -> None:
    base = ["train", "--data", runs["images"], "--out", runs["root"] / "t2", "--steps", 1]
    family = _error_line(_invoke(vq_tok, [*base, "--family", "nope"]))
    assert "unknown tokenizer family 'nope' (--family)" in family and "vqgan" in family
    preset = _error_line(_invoke(vq_tok, [*base, "--family", "vqgan", "--preset", "huge"]))
    assert "no preset 'huge'" in preset and "(--preset)" in preset


def test_malformed_set_names_the_flag(runs: dict[str, Path]) -> None:
    tok = _invoke(vq_tok, ["train", "--family", "vqgan", "--data", runs["images"], "--out", runs["root"] / "t3", "--set", "nokv"])
    assert "--set" in _error_line(tok, exit_codes=(1, 2))
    ar = _invoke(vq_ar, ["train", "--data", runs["tokens"], "--out", runs["root"] / "a3", "--set", "nokv"])
    assert "--set" in _error_line(ar, exit_codes=(1, 2))


def test_batch_larger_than_the_data_names_the_flag_and_the_limit(runs: dict[str, Path]) -> None:
    tok = _invoke(vq_tok, ["train", "--family", "vqgan", "--data", runs["images"], "--out", runs["root"] / "t4", "--batch-size", 1000])
    assert "--batch-size 1000 exceeds the 18 samples" in _error_line(tok) and "--batch-size 18 or less" in _error_line(tok)
    ar = _invoke(vq_ar, ["train", "--data", runs["tokens"], "--out", runs["root"] / "a4", "--size", "nano", "--batch-size", 400])
    assert "--batch-size 400 exceeds the 18 samples" in _error_line(ar)


def test_resume_with_changed_settings_names_the_setting(runs: dict[str, Path]) -> None:
    tok = _invoke(vq_tok, ["train", "--family", "vqgan", "--data", runs["images"], "--out", runs["tok"], "--steps", 4,
                           "--batch-size", 8, "--resume"])  # fmt: skip
    assert "--batch-size was 4, now 8" in _error_line(tok)
    ar = _invoke(vq_ar, ["train", "--data", runs["tokens"], "--out", runs["ar"], "--size", "nano", "--steps", 4,
                         "--batch-size", 8, "--resume"])  # fmt: skip
    assert "--batch-size was 4, now 8" in _error_line(ar)
    seed = _invoke(vq_ar, ["train", "--data", runs["tokens"], "--out", runs["ar"], "--size", "nano", "--steps", 4,
                           "--batch-size", 4, "--seed", 3, "--resume"])  # fmt: skip
    assert "--seed was 0, now 3" in _error_line(seed)


def test_missing_files_and_wrong_families(runs: dict[str, Path]) -> None:
    missing = _invoke(vq_tok, ["tokenize", runs["images"], "--ckpt", runs["root"] / "missing.safetensors", "--out", runs["root"] / "x"])
    assert "missing.safetensors" in _error_line(missing, exit_codes=(2,))
    wrong = _invoke(vq_ar, ["sample", "--ckpt", runs["tok"] / "tokenizer.safetensors", "--out", runs["root"] / "s"])
    assert "holds a 'vqgan' model, expected 'ar'" in _error_line(wrong)
    not_tokens = _invoke(vq_ar, ["train", "--data", runs["images"], "--out", runs["root"] / "a5", "--size", "nano"])
    assert str(runs["images"]) in _error_line(not_tokens)
