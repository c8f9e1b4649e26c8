"""One face for every ``vq-*`` CLI: walks the click trees of all console scripts the packages install.

Checks that every option and command documents itself, that the concepts the CLIs share are spelled
the same everywhere (``--ckpt``, ``--out``, ``--loader-workers``, ``--ray-address``, ``--num-workers``,
``--cfg-scale``, ``--seed``, ``--precision``), and that every top-level group has ``--version``,
``-v/--verbose`` and ``-q/--quiet`` with the same meaning.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points, version

import click
import pytest
from click.testing import CliRunner

EXPECTED = {"vq-core", "vq-data", "vq-tok", "vq-ar", "vq-eval", "vq-pipeline"}

SHARED_NAMES: dict[str, str] = {
    "ckpt": "--ckpt",
    "out": "--out",
    "out_dir": "--out",
    "out_path": "--out",
    "loader_workers": "--loader-workers",
    "workers": "--loader-workers",
    "ray_address": "--ray-address",
    "num_workers": "--num-workers",
    "cfg_scale": "--cfg-scale",
    "seed": "--seed",
    "precision": "--precision",
    "config": "--config",
}
"""Parameter name -> the one flag that spells it in every CLI."""

SYNONYMS = {
    "--checkpoint", "--model-path", "--output", "--output-dir", "--out-dir", "--outdir", "--workers", "--num-loader-workers",
    "--dataloader-workers", "--address", "--ray", "--cfg", "--guidance", "--guidance-scale", "--random-seed", "--rng-seed",
    "--dtype", "--amp", "--mixed-precision", "--cfg-file", "--conf",
}
"""Other spellings of the shared concepts: a command may accept one only as a hidden old name."""

HEAVY = ("torch", "torchvision", "transformers", "ray", "PIL", "webdataset", "scipy", "numpy", "yaml")
"""What printing ``--help`` must not import (each costs from 0.1 s to several seconds)."""


def _clis() -> dict[str, click.Group]:
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name.startswith("vq-")}
    return {name: ep.load() for name, ep in sorted(scripts.items())}


CLIS = _clis()


def _walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


COMMANDS = [(path, cmd) for name, main in CLIS.items() for path, cmd in _walk(main, name)]


def _shown_names(option: click.Option) -> list[str]:
    old = set(getattr(option, "old_names", ()))
    return [o for o in (*option.opts, *option.secondary_opts) if o not in old]


def test_every_vq_console_script_is_walked() -> None:
    assert set(CLIS) == EXPECTED
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_and_command_has_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path}: no docstring/help"
    undocumented = [o.opts[0] for o in command.params if isinstance(o, click.Option) and not (o.help or "").strip()]
    assert not undocumented, f"{path}: options without help: {undocumented}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_shared_concepts_use_the_shared_names(path: str, command: click.Command) -> None:
    for option in (p for p in command.params if isinstance(p, click.Option)):
        shown = _shown_names(option)
        if option.name in SHARED_NAMES:
            assert SHARED_NAMES[option.name] in shown, f"{path}: {option.name} is spelled {shown}, not {SHARED_NAMES[option.name]}"
        if not option.hidden:
            assert not SYNONYMS & set(shown), f"{path}: {shown} uses a synonym of a shared flag"
        if path not in CLIS:  # -v / -q belong to the top-level groups alone
            assert not {"-v", "-q", "--verbose", "--quiet"} & set(shown), f"{path}: redefines -v/-q"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_group_has_version_verbose_quiet(name: str) -> None:
    main = CLIS[name]
    flags = {o for p in main.params for o in (*p.opts, *p.secondary_opts)}
    assert {"--version", "-v", "--verbose", "-q", "--quiet"} <= flags
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    distribution = main.callback.__wrapped__.__module__.split(".")[0].replace("_", "-")  # type: ignore[union-attr]
    assert result.output.split() == [distribution, version(distribution)]
    assert CliRunner().invoke(main, ["-v", "-q", "--help"]).exit_code == 0  # --help is eager: no clash yet


def test_quiet_means_warnings_only_and_no_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    from vq_core.progress import PROGRESS_ENV, progress

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)
    result = CliRunner().invoke(CLIS["vq-core"], ["-q", "schema"])
    assert result.exit_code == 0, result.output
    assert os.environ[PROGRESS_ENV] == "0" and logging.getLogger().level == logging.WARNING
    assert progress(range(3)).disable  # even where stderr is a terminal
    result = CliRunner().invoke(CLIS["vq-core"], ["-v", "schema"])
    assert result.exit_code == 0 and logging.getLogger().level == logging.DEBUG
    both = CliRunner().invoke(CLIS["vq-core"], ["-v", "-q", "schema"])
    assert both.exit_code == 2 and "-v/--verbose and -q/--quiet" in both.output


def test_old_spellings_still_parse_but_are_not_shown(tmp_path) -> None:  # noqa: ANN001
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    sample = CLIS["vq-ar"].commands["sample"]
    ctx = sample.make_context("sample", ["--ckpt", str(ckpt), "--out", str(tmp_path), "--cfg", "2.5"])
    assert ctx.params["cfg_scale"] == 2.5
    assert "--cfg " not in sample.get_help(ctx) and "--cfg-scale" in sample.get_help(ctx)


def test_help_of_every_command_imports_no_heavy_module() -> None:
    """``--help`` stays fast because nothing heavy is imported to print it (timings: benchmarks/cli_help.py)."""
    code = textwrap.dedent(f"""
        import sys
        from importlib.metadata import entry_points
        from click.testing import CliRunner

        def paths(command, path):
            yield path
            for name, sub in getattr(command, "commands", {{}}).items():
                yield from paths(sub, [*path, name])

        for ep in entry_points(group="console_scripts"):
            if ep.name.startswith("vq-"):
                main = ep.load()
                for path in paths(main, []):
                    result = CliRunner().invoke(main, [*path, "--help"])
                    assert result.exit_code == 0, (ep.name, path, result.output)
        print(" ".join(m for m in {HEAVY!r} if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [], f"--help imported {done.stdout.split()}"
