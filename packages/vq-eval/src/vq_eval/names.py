"""The evaluation choices that ``vq-eval --help`` lists: kept free of imports, because the modules that
use them import torch and torchvision, which ``--help`` must not wait for."""

from __future__ import annotations

from typing import Literal, get_args

Resize = Literal["pytorch-fid", "tf1"]
"""Inception input resize: pytorch-fid's bilinear, or the TF1 graph's (ADM's evaluator, torch-fidelity)."""
RESIZES: tuple[str, ...] = get_args(Resize)

RECONSTRUCTION_METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips", "rfid", "usage")
"""What ``vq-eval tokenizer`` measures by default."""
