"""What each package requires: optional stacks stay optional (issue 13, "Ray and packaging").

* vq-ar runs its own (LlamaGen-style) model without transformers, which only the GPT-2 backbone needs
  (the ``vq-ar[gpt2]`` extra); asking for that backbone without it is a one-line config error.
* vq-data's demo sources (``bundled`` photos, ``digits``) need scikit-image / scikit-learn, the
  ``vq-data[demo]`` extra that the pipeline app (where the demo is) installs; every other source works
  without them, and ``digits`` says which extra to install.
* ``ray job submit`` (docs/ray.md) needs ``ray[default]``: the Ray extra and the pipeline ask for it.

The import checks run in a fresh interpreter where the optional module cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _project(path: str) -> dict:
    return tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in requirements}


def _run_without(blocked: list[str], code: str) -> str:
    """Run ``code`` where importing any of ``blocked`` fails as if it were not installed; its stdout."""
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_transformers_is_an_extra_of_vq_ar_only_for_gpt2() -> None:
    project = _project("packages/vq-ar")
    assert "transformers" not in _names(project["dependencies"])
    assert "transformers" in _names(project["optional-dependencies"]["gpt2"])
    assert "vq-ar[gpt2]" in _project("apps/vq-pipeline")["dependencies"]


def test_vq_ar_builds_and_samples_without_transformers() -> None:
    out = _run_without(["transformers"], """
        import torch
        from vq_ar import SamplingConfig, ar_config, build_ar_model, generate
        from vq_core import ConfigError

        config = ar_config("tiny", vocab_size=16, num_classes=3, grid=(2, 2))
        model = build_ar_model(config)
        tokens = generate(model.eval(), torch.tensor([0, 2]), sampling=SamplingConfig(cfg_scale=1.0), generator=torch.Generator().manual_seed(0))
        assert tokens.shape == (2, 4) and int(tokens.max()) < 16
        try:
            build_ar_model(config.model_copy(update={"backbone": "gpt2"}))
        except ConfigError as err:
            print("ERR", err)
        print("transformers" in sys.modules and sys.modules["transformers"] is not None)
    """)
    assert "ERR backbone 'gpt2' (field backbone)" in out and "pip install 'vq-ar[gpt2]'" in out
    assert out.strip().endswith("False")


def test_demo_data_dependencies_live_with_the_demo() -> None:
    data = _project("packages/vq-data")
    assert not {"scikit-image", "scikit-learn"} & _names(data["dependencies"])
    assert {"scikit-image", "scikit-learn"} <= _names(data["optional-dependencies"]["demo"])
    assert "vq-data[demo]" in _project("apps/vq-pipeline")["dependencies"]


def test_vq_data_reads_folders_without_the_demo_extra(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "cat").mkdir()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "cat" / "a.png")
    out = _run_without(["sklearn", "skimage"], f"""
        from vq_data import SourceError, available_photos, make_source

        records = list(make_source({str(tmp_path)!r}).records())
        print(len(records), available_photos())
        try:
            list(make_source("digits").records())
        except SourceError as err:
            print("ERR", err)
    """)
    assert out.splitlines()[0] == "1 []"
    assert "ERR" in out and "pip install 'vq-data[demo]'" in out


def test_ray_job_submit_dependencies_are_asked_for() -> None:
    for requirements in (_project("packages/vq-tokenizers")["optional-dependencies"]["ray"], _project("apps/vq-pipeline")["dependencies"]):
        ray = next(r for r in requirements if r.startswith("ray["))
        assert "default" in ray.split("[")[1].split("]")[0].split(",")
    assert any(line.startswith("ray[") and "default" in line for line in (ROOT / "requirements-3rdparty.txt").read_text().splitlines())
