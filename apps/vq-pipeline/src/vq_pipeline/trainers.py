"""Launching the pipeline's trainers through ``vq_core.launch``: in this process, or on Ray Train.

Every trainer is a ``fn(config, session)`` loop of its package: :func:`vq_tokenizers.train_tokenizer`
(VQGAN / CVQ-VAE / FSQ), :func:`vq_tokenizers.train_vqkd`, :func:`vq_tokenizers.train_pixel_decoder` and
:func:`vq_ar.train_loop` run data-parallel on ``num_workers`` Ray workers and resume from the
checkpoint Ray kept after a worker failure; :func:`vq_tokenizers.fit_cluster` (k-means) is one process
and gets one worker.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vq_core import final_metrics, launch

from vq_pipeline.config import RaySettings

log = logging.getLogger(__name__)


def run_trainer(
    fn: Any, loop_config: dict[str, Any], ray: RaySettings, *, name: str, storage: Path, data_parallel: bool = True
) -> dict[str, Any]:
    """Launch ``fn`` as ``ray`` asks; the final metrics, whether it ran here or on Ray."""
    workers = ray.num_workers
    if ray.address is not None and not data_parallel and workers > 1:
        log.info("%s runs in one process; using one Ray worker of the %d asked for", name, workers)
        workers = 1
    result = launch(
        fn,
        loop_config,
        ray_address=ray.address,
        num_workers=workers if ray.address is not None else 1,
        use_gpu=ray.use_gpu,
        storage_path=storage,
        name=name,
        max_failures=ray.max_failures,
    )
    return final_metrics(result, name=name, storage=storage)
