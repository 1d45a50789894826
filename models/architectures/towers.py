"""Per-task towers: the shared encoder, then a hidden layer of each task's own before its head.

The towers give each task room to bend the shared features its own way, which
can absorb some of the conflict a hard-shared model forces onto the encoder.
"""
from __future__ import annotations

import torch
from torch import nn

from models.architectures import Architecture, register, task_heads


def _tower(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())


@register
class Towers(Architecture):
    name = "towers"
    description = "Shared encoder, then a per-task hidden layer (tower) before each head."

    def build(self, model, spec) -> None:
        super().build(model, spec)
        from models.multitask import TaskHeads  # addressed by task name, stored under a safe key
        model.towers = TaskHeads({name: _tower(spec.hidden) for name in spec.heads})

    def decode(self, model, features):
        return {name: head(model.towers[name](features)) for name, head in model.heads.items()}

    def stack_build(self, stack, template) -> None:
        super().stack_build(stack, template)
        hidden, tasks = template.spec.hidden, len(stack.heads)
        # [C, T, out, in] for every task of the sweep; towers of tasks outside a slot's combination stay zero
        stack.tower_weight = nn.Parameter(torch.zeros(stack.slots, tasks, hidden, hidden))
        stack.tower_bias = nn.Parameter(torch.zeros(stack.slots, tasks, hidden))

    def stack_decode(self, stack, features):
        # features [C, B, H] -> per task [C, T, B, H]
        towers = torch.einsum("cbi,ctoi->ctbo", features, stack.tower_weight) + stack.tower_bias.unsqueeze(2)
        return task_heads(stack, torch.relu(towers))

    @torch.no_grad()
    def stack_set(self, stack, slot, model) -> None:
        super().stack_set(stack, slot, model)
        order = list(stack.heads)
        for name, tower in model.towers.items():
            stack.tower_weight[slot, order.index(name)] = tower[0].weight
            stack.tower_bias[slot, order.index(name)] = tower[0].bias

    def stack_state(self, stack, slot, tasks):
        from models.multitask import head_key
        out = super().stack_state(stack, slot, tasks)
        order = list(stack.heads)
        for name in tasks:
            out[f"towers.{head_key(name)}.0.weight"] = stack.tower_weight.detach()[slot, order.index(name)].clone()
            out[f"towers.{head_key(name)}.0.bias"] = stack.tower_bias.detach()[slot, order.index(name)].clone()
        return out
