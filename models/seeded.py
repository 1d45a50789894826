"""Randomness a model owns: initialisation and dropout drawn from its own generators.

torch's global RNG is shared by every thread of the process, so two jobs
training at once (the app runs jobs as threads) would take turns drawing from
it and neither would get the numbers its seed promises. A model seeded here
draws its initial weights and every dropout mask from generators made from its
seed alone, so the same seed gives the same numbers whatever else runs.

The batched trainer (``models.stacked.StackedModel``) gives each slot the same
generators and draws each slot's masks with ``dropout_mask`` in the same order
as the model trained alone, so both modes compute the same numbers with dropout on.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import torch
from torch import nn

_STREAMS = {"init": 1, "dropout": 2}
_GLOBAL_RNG = threading.Lock()


def generator(seed: int, stream: str) -> torch.Generator:
    """The CPU generator of ``stream`` ("init" or "dropout") for ``seed``: independent streams per use."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _STREAMS[stream]]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def dropout_mask(shape: torch.Size | tuple, p: float, g: torch.Generator, device) -> torch.Tensor:
    """Keep-mask scaled by 1/(1-p), drawn on the CPU from ``g`` (the same numbers on every device)."""
    keep = torch.empty(shape).bernoulli_(1.0 - p, generator=g)
    return keep.div_(1.0 - p).to(device)


class SeededDropout(nn.Dropout):
    """``nn.Dropout`` whose masks come from ``self.generator`` (global RNG when it is None)."""
    generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(x)
        return x * dropout_mask(x.shape, self.p, self.generator, x.device)


@torch.no_grad()
def seed_model(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise ``model`` from ``seed``'s own generator and give its dropout layers their own.

    Linear and Embedding layers are drawn as torch's defaults draw them (same
    distributions), but from the model's generator. Any other layer with
    parameters is reset from a seed taken from that generator, with the global
    RNG held for that moment only.
    """
    init = generator(seed, "init")
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=init)
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight.shape[1]) if module.weight.shape[1] else 0.0
                nn.init.uniform_(module.bias, -bound, bound, generator=init)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, generator=init)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif any(True for _ in module.parameters(recurse=False)) and hasattr(module, "reset_parameters"):
            sub_seed = int(torch.randint(2**62, (1,), generator=init))
            with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
                torch.manual_seed(sub_seed)
                module.reset_parameters()
    masks = generator(seed, "dropout")
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Dropout):
                if not isinstance(child, SeededDropout):
                    child = SeededDropout(child.p)
                    setattr(parent, name, child)
                child.generator = masks  # one stream per model, drawn in forward order
    return model


def unseed_dropout(model: nn.Module) -> nn.Module:
    """Drop the generators ``seed_model`` attached (dropout falls back to the global RNG)."""
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = None
    return model
