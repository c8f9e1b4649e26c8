"""Hugging Face Hub-style folders: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

A pretrained folder (a local directory or a Hub repo) holds

* ``model.safetensors`` - a vq checkpoint (:func:`vq_core.save_checkpoint`: weights + family + config in
  the safetensors header), the same file the CLIs' ``--ckpt`` takes, so there is no third format;
* ``config.json`` - ``family``, ``config`` and ``config_hash`` in plain JSON, for the Hub's file viewer
  and for tools that read config.json; loading checks it against the checkpoint's own copy;
* ``README.md`` - a model card (Hub metadata header) holding the training config and the last metrics.

Why not ``huggingface_hub.PyTorchModelHubMixin`` itself: it rebuilds a model from ``cls(**config.json)``
(our families are rebuilt from a pydantic config by family name, so ``Tokenizer.from_pretrained``
must dispatch to the right class) and falls back to ``pytorch_model.bin`` - a pickle - when a repo has
no safetensors file, which vq never opens.  The same three methods, with the same argument names, sit on
:class:`HubMixin` instead, built on ``huggingface_hub``'s own ``snapshot_download``, ``ModelCard`` and
``HfApi.upload_folder``.

Hub ids resolve through the Hugging Face cache (``$HF_HUB_CACHE`` or ``$HF_HOME/hub``, read when called),
and only the three files above are fetched.  ``HF_HUB_OFFLINE=1`` (or ``local_files_only=True``) uses the
cache alone: a machine without network loads what an earlier ``hf download`` or ``from_pretrained`` left.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel

from vq_core.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from vq_core.config import config_hash
from vq_core.io import atomic_write_text

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
PRETRAINED_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
T = TypeVar("T", bound="HubMixin")


class PretrainedNotFoundError(CheckpointError):
    """A ``from_pretrained`` name is neither a pretrained directory nor a repo in the local HF cache."""


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache as the environment names it now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hf_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for the cache alone, read when called."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_repo_id(name: str) -> bool:
    """``owner/name`` as the Hub spells repo ids (a path that exists is never taken for one)."""
    return bool(_REPO_ID.match(name)) and ".." not in name and not Path(name).exists()


def resolve_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    allow_patterns: list[str] | None = None,
    what: str = "pretrained model",
) -> Path:
    """The local directory of ``name_or_path``: itself when it is a directory, else the cached snapshot of a Hub repo.

    Downloads (only ``allow_patterns``, default the three pretrained files) unless ``local_files_only`` or
    ``HF_HUB_OFFLINE`` say the cache alone; a repo missing from the cache is a :class:`PretrainedNotFoundError`
    naming the cache and the command that fills it.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or not is_repo_id(name):
        raise PretrainedNotFoundError(
            f"{what} {name!r} is neither a directory (saved with save_pretrained) nor a Hub repo id (owner/name)"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache = Path(cache_dir) if cache_dir is not None else hf_hub_cache()
    offline = local_files_only or hf_offline()
    try:
        folder = snapshot_download(
            name, revision=revision, cache_dir=str(cache), local_files_only=offline,
            allow_patterns=allow_patterns or list(PRETRAINED_FILES),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        how = "with HF_HUB_OFFLINE=1 only the cache is read" if offline else "it could not be downloaded"
        raise PretrainedNotFoundError(
            f"{what} {name!r} is not in the Hugging Face cache {cache} ({how}); "
            f"run `hf download {name}` on a machine with network and copy the cache, or pass a local directory"
        ) from err
    return Path(folder)


def _markdown_json(data: Any) -> str:
    return "```json\n" + json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n```"


def model_card(
    *,
    family: str,
    library: str,
    config: dict[str, Any],
    training_config: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    step: int,
) -> str:
    """README.md of a pretrained folder: Hub metadata, how to load it, the model/training configs and last metrics."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(library_name=library, tags=["vq", "image-tokenizer" if library == "vq-tokenizers" else "autoregressive", family])
    steps = int(metrics["step"]) if metrics and isinstance(metrics.get("step"), (int, float)) else step
    trained = f", trained for {steps} steps" if steps else ""
    lines = [
        f"# vq {family} model",
        "",
        f"A `{family}` model of the vq monorepo ({library}){trained}.",
        "",
        "```python",
        f"from {library.replace('-', '_')} import {'Tokenizer' if library == 'vq-tokenizers' else 'LoadedAR'}",
        f"model = {'Tokenizer' if library == 'vq-tokenizers' else 'LoadedAR'}.from_pretrained(\"<this repo or folder>\")",
        "```",
        "",
        "`model.safetensors` is a vq checkpoint (safetensors, config in its header); any `--ckpt` option takes it.",
        "",
        "## Model config",
        "",
        _markdown_json(config),
        "",
        "## Training config",
        "",
        _markdown_json(training_config) if training_config else "Not recorded.",
        "",
        "## Last metrics",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    else:
        lines.append("Not recorded.")
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}\n", body="\n".join(lines))
    return str(card)


def write_pretrained(
    directory: str | os.PathLike[str],
    *,
    family: str,
    library: str,
    config: BaseModel,
    model: dict[str, torch.Tensor],
    step: int = 0,
    state: dict[str, Any] | None = None,
    training_config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` + ``README.md`` into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_checkpoint(directory / WEIGHTS_NAME, family=family, config=config, model=model, step=step, state=state)
    config_json = {"family": family, "library": library, "config": config.model_dump(mode="json"),
                   "config_hash": config_hash(config), "step": step, "format": "vq-checkpoint"}
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config_json, indent=2) + "\n")
    card = model_card(
        family=family, library=library, config=config_json["config"], training_config=training_config, metrics=metrics, step=step
    )
    atomic_write_text(directory / CARD_NAME, card)
    return directory


def read_pretrained(directory: Path, *, family: str | None = None, map_location: str | torch.device = "cpu") -> Checkpoint:
    """The checkpoint of a pretrained folder (safetensors only: nothing is unpickled), checked against its config.json."""
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise PretrainedNotFoundError(f"{directory} holds no {WEIGHTS_NAME}; it was not written by save_pretrained")
    ckpt = load_checkpoint(weights, family=family, map_location=map_location)
    config_file = directory / CONFIG_NAME
    if config_file.is_file():
        try:
            meta = json.loads(config_file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise CheckpointError(f"{config_file} is not JSON ({err}); re-save the folder with save_pretrained") from err
        if meta.get("family") != ckpt.family or meta.get("config_hash") not in (None, ckpt.config_hash):
            raise CheckpointError(
                f"{config_file} describes a {meta.get('family')!r} model (hash {meta.get('config_hash')}) but {weights} holds "
                f"{ckpt.family!r} (hash {ckpt.config_hash}); re-save the folder with save_pretrained"
            )
    return ckpt


def run_summary(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(training config, last metrics) of a training run directory, for the model card.

    The metrics are the last line of ``metrics.jsonl``; the training config is ``train.json`` (vq-ar) or the
    ``train_config`` a tokenizer trainer keeps in its newest step checkpoint.
    """
    run_dir = Path(run_dir)
    metrics = None
    log = run_dir / "metrics.jsonl"
    if log.is_file():
        for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
            try:
                metrics = json.loads(line)
                break
            except ValueError:
                continue
    training = None
    if (run_dir / "train.json").is_file():
        training = json.loads((run_dir / "train.json").read_text(encoding="utf-8"))
    else:
        steps = sorted(run_dir.glob("step_*.safetensors"))
        if steps:
            state = load_checkpoint(steps[-1]).state
            training = {k: state[k] for k in ("train_config", "loss_config") if k in state} or None
    return training, metrics


def push_folder(
    repo_id: str,
    save: Callable[[Path], Any],
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Upload vq model (save_pretrained)",
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload the folder ``save`` writes, in one commit; the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pretrained"
        save(folder)
        info = api.upload_folder(
            repo_id=repo_id, repo_type="model", folder_path=folder, commit_message=commit_message, revision=revision
        )
    return str(getattr(info, "commit_url", info))


class HubMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for a class that knows its checkpoint.

    Subclasses provide :meth:`_pretrained_checkpoint` (the ``write_pretrained`` arguments of an instance)
    and :meth:`_from_pretrained_checkpoint` (an instance from a loaded checkpoint).
    """

    hub_library: ClassVar[str] = "vq"
    hub_family: ClassVar[str | None] = None
    """The checkpoint family ``from_pretrained`` insists on (None: any this class can rebuild)."""

    def _pretrained_checkpoint(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_pretrained_checkpoint(cls: type[T], ckpt: Checkpoint, map_location: str | torch.device) -> T:
        raise NotImplementedError

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        training_config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        run_dir: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Write model.safetensors + config.json + README.md; ``run_dir`` fills the card from a training run."""
        if run_dir is not None:
            found_config, found_metrics = run_summary(run_dir)
            training_config = training_config or found_config
            metrics = metrics or found_metrics
        return write_pretrained(
            save_directory, library=self.hub_library, training_config=training_config, metrics=metrics,
            **self._pretrained_checkpoint(),
        )

    @classmethod
    def from_pretrained(
        cls: type[T],
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        map_location: str | torch.device = "cpu",
    ) -> T:
        """Load from a directory or a Hub id (the HF cache first; offline with ``HF_HUB_OFFLINE=1``)."""
        directory = resolve_pretrained(
            pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        ckpt = read_pretrained(directory, family=cls.hub_family, map_location=map_location)
        return cls._from_pretrained_checkpoint(ckpt, map_location)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        training_config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        token: str | None = None,
        private: bool | None = None,
        commit_message: str = "Upload vq model (save_pretrained)",
        revision: str | None = None,
    ) -> str:
        """``save_pretrained`` into a temporary folder and upload it to ``repo_id`` in one commit."""
        return push_folder(
            repo_id,
            lambda folder: self.save_pretrained(folder, training_config=training_config, metrics=metrics, run_dir=run_dir),
            token=token, private=private, commit_message=commit_message, revision=revision,
        )
