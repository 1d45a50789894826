"""Multi-gate mixture of experts (MMoE, Ma et al. 2018): k shared experts, one softmax gate per task.

Each expert is a copy of the modality's encoder MLP; each task mixes the
experts' outputs with its own gate, a softmax over the experts computed from
the encoder input (for text the pooled word embeddings, shared by all experts).
Tasks that conflict can lean on different experts instead of fighting over one.
"""
from __future__ import annotations

import torch
from torch import nn

from models.architectures import Architecture, StackedMLP, modality_encoder, register, task_heads

EXPERTS = 4  # the default; ModelSpec.extra["experts"] (TrainConfig.experts, --experts) overrides it
MAX_EXPERTS = 16  # each expert is a copy of the encoder MLP


def n_experts(spec) -> int:
    k = int(spec.extra.get("experts", EXPERTS))
    if k < 1:
        raise ValueError(f"mmoe needs at least one expert, got {k}")
    return k


class MMoEEncoder(nn.Module):
    """Input -> one mixture of the experts per task, [B, T, hidden] (T in ``spec.heads`` order)."""

    def __init__(self, spec):
        super().__init__()
        self.modality = spec.modality
        encoders = [modality_encoder(spec) for _ in range(n_experts(spec))]
        if spec.modality == "text":
            self.embedding = encoders[0].embedding  # one table: the experts differ above the pooling
            gate_in = spec.embed_dim
        elif spec.modality == "tabular":
            gate_in = spec.input["n_features"]
        else:
            gate_in = spec.input["height"] * spec.input["width"]
        self.experts = nn.ModuleList(e.mlp for e in encoders)
        from models.multitask import TaskHeads  # addressed by task name, stored under a safe key
        self.gates = TaskHeads({name: nn.Linear(gate_in, len(encoders)) for name in spec.heads})

    def stem(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """What experts and gates read: pooled embeddings (text), the flat input otherwise."""
        if self.modality != "text":
            return x.flatten(1)
        # ``mask`` as in TextEncoder: integrated gradients keep the real input's pooling denominator
        if mask is None:
            mask = (x != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        return (self.embedding(x) * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(x, mask)
        experts = torch.stack([e(h) for e in self.experts], 1)                        # [B, k, H]
        gates = torch.stack([g(h).softmax(-1) for g in self.gates.values()], 1)       # [B, T, k]
        return gates @ experts                                                       # [B, T, H]


@register
class MMoE(Architecture):
    name = "mmoe"
    description = (f"Mixture of experts: k shared expert encoders (--experts, default {EXPERTS}), a softmax gate "
                   "per task (Ma et al. 2018).")

    def settings(self, config) -> dict[str, int]:
        return {"experts": int(getattr(config, "experts", EXPERTS))}

    def build(self, model, spec) -> None:
        model.encoder = MMoEEncoder(spec)

    def decode(self, model, features):
        return {name: head(features[:, t]) for t, (name, head) in enumerate(model.heads.items())}

    # -- stacked: experts on a second axis [C, k, ...], gates [C, T, k, in] over the sweep's tasks ----------
    def stack_build(self, stack, template) -> None:
        encoder = template.encoder
        k = len(encoder.experts)
        stack.experts = k
        stack.body = StackedMLP(encoder.experts[0], stack.slots, lead=(k,))
        gate_in = next(iter(encoder.gates.values())).in_features
        stack.gate_weight = nn.Parameter(torch.zeros(stack.slots, len(stack.heads), k, gate_in))
        stack.gate_bias = nn.Parameter(torch.zeros(stack.slots, len(stack.heads), k))

    def stack_features(self, stack, h):
        h = h.flatten(2)                                                             # [C, B, in]
        c, b, d = h.shape
        expert_in = h.unsqueeze(1).expand(c, stack.experts, b, d).reshape(c * stack.experts, b, d)
        # slot-major copies, so slot c's dropout masks are drawn expert after expert, as its model draws them
        experts = stack.body(expert_in, stack.dropout).view(c, stack.experts, b, -1)  # [C, k, B, H]
        logits = torch.einsum("cbi,ctki->ctbk", h, stack.gate_weight) + stack.gate_bias.unsqueeze(2)
        return torch.einsum("ctbk,ckbh->ctbh", logits.softmax(-1), experts)          # [C, T, B, H]

    def stack_decode(self, stack, features):
        return task_heads(stack, features)

    @torch.no_grad()
    def stack_set(self, stack, slot, model) -> None:
        for j, expert in enumerate(model.encoder.experts):
            stack.body.set(slot, expert, (j,))
        order = list(stack.heads)
        for name, gate in model.encoder.gates.items():
            stack.gate_weight[slot, order.index(name)] = gate.weight
            stack.gate_bias[slot, order.index(name)] = gate.bias

    def stack_state(self, stack, slot, tasks):
        from models.multitask import head_key
        out = {}
        for j in range(stack.experts):
            out.update(stack.body.state(slot, f"encoder.experts.{j}.", (j,)))
        order = list(stack.heads)
        for name in tasks:
            out[f"encoder.gates.{head_key(name)}.weight"] = stack.gate_weight.detach()[slot, order.index(name)].clone()
            out[f"encoder.gates.{head_key(name)}.bias"] = stack.gate_bias.detach()[slot, order.index(name)].clone()
        return out
