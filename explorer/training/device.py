"""Choosing where to train: ``auto`` picks CUDA, then Apple MPS, then the CPU."""
from __future__ import annotations

import torch

from explorer.errors import ExplorerError

CHOICES = ("auto", "cpu", "cuda", "mps")


def available() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        found = available()
        return torch.device("cuda" if "cuda" in found else "mps" if "mps" in found else "cpu")
    base = name.split(":")[0]
    if base not in CHOICES:
        raise ExplorerError(f"Unknown device '{name}'. Use one of: {', '.join(CHOICES)}.")
    if base not in available():
        raise ExplorerError(f"Device '{name}' is not available on this machine "
                            f"(found: {', '.join(available())}). Use 'auto' or 'cpu'.")
    return torch.device(name)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
