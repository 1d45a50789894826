"""Many independent MultiTaskModels evaluated as one network: every weight stacked on a slot axis.

A sweep trains the same architecture on many combinations of tasks (and seeds).
Run one after another, each small model wastes the machine on per-step
overhead; stacked, one batched matmul does the work of all of them. Slot ``c``
is an exact copy of one ``MultiTaskModel``: its encoder, and a head for every
task of the sweep, where heads of tasks outside its combination stay zero and
get no loss (so they never receive a gradient).

Slots come in ``groups`` of equal size, slot ``c = group * per_group + i``; all
slots of a group see the same input batch (one group per seed, since a seed
fixes the batch order). Nothing else is shared between slots. The architecture
(``models.architectures``) stacks the layers between the pooled input and the heads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.architectures import get_architecture
from models.multitask import MultiTaskModel, head_key
from models.seeded import dropout_mask


class StackedModel(nn.Module):
    def __init__(self, template: MultiTaskModel, slots: int, groups: int, heads: dict[str, int]):
        """Room for ``slots`` models shaped like ``template``, in ``groups`` equal groups.

        ``heads`` is the sweep's union of tasks -> output width. The weights start
        at zero: ``set_slot`` copies each model in (the heads it lacks stay zero).
        """
        super().__init__()
        if slots < 1 or slots % groups:
            raise ValueError(f"{slots} slots cannot be split into {groups} equal groups")
        spec = template.spec
        self.modality, self.groups = spec.modality, groups
        self.slots, self.per_group = slots, slots // groups
        self.heads = dict(heads)
        self.head_slices, start = {}, 0
        for name, width in self.heads.items():
            self.head_slices[name] = slice(start, start + width)
            start += width
        self.n_outputs = start
        encoder = template.encoder
        if self.modality == "text":
            # [groups, vocab, per_group * embed]: a token's row holds every slot of its group, so
            # one embedding-bag pools all of them and a batch touches whole contiguous rows
            vocab, self.embed_dim = encoder.embedding.weight.shape
            self.embedding = nn.Parameter(torch.zeros(groups, vocab, self.per_group * self.embed_dim))
        self.dropout_generators: list[torch.Generator] | None = None  # one per slot (models.seeded)
        # the architecture stacks what lies between the (pooled) input and the heads
        self.arch = get_architecture(spec.arch)
        self.arch.stack_build(self, template)
        self.head_weight = nn.Parameter(torch.zeros(slots, self.n_outputs, spec.hidden))
        self.head_bias = nn.Parameter(torch.zeros(slots, self.n_outputs))

    @torch.no_grad()
    def set_slot(self, slot: int, model: MultiTaskModel) -> None:
        """Copy ``model``'s weights into slot ``slot``."""
        if self.modality == "text":
            g, i = divmod(slot, self.per_group)
            self.slot_view("embedding", self.embedding)[g, :, i] = model.encoder.embedding.weight
        self.arch.stack_set(self, slot, model)
        for name, head in model.heads.items():
            self.head_weight[slot, self.head_slices[name]] = head.weight
            self.head_bias[slot, self.head_slices[name]] = head.bias

    # -- forward -------------------------------------------------------------------------------
    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """Masked mean of the token embeddings, [B, L] -> [C, B, D] (TextEncoder semantics).

        The same token rows for every group (evaluation: all slots see all rows).
        """
        bag = BagOfWords(tokens, self.embedding.shape[1])
        return self.unstack_groups(torch.stack([bag.pool(self.embedding[g]) for g in range(self.groups)]))

    def unstack_groups(self, pooled: torch.Tensor) -> torch.Tensor:
        """[groups, B, per_group * D] (one row of the embedding table per group) -> [C, B, D]."""
        g, b, _ = pooled.shape
        return (pooled.view(g, b, self.per_group, self.embed_dim).transpose(1, 2)
                .reshape(self.slots, b, self.embed_dim))

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """The encoder body on [C, B, ...] -> what ``decode`` takes (the architecture's features)."""
        return self.arch.stack_features(self, h)

    def dropout(self, h: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout on [C * copies, B, ...] (slot-major copies, e.g. the experts of a slot)."""
        if not self.training or p == 0:
            return h
        if self.dropout_generators is None:
            return F.dropout(h, p, True)
        # slot c's masks [B, ...] from slot c's generator, copy after copy: the very draws its model
        # makes when trained alone
        copies = h.shape[0] // len(self.dropout_generators)
        return h * torch.stack([dropout_mask(h.shape[1:], p, g, h.device)
                                for g in self.dropout_generators for _ in range(copies)])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features [C, B, hidden] of one batch ``x`` [B, ...] that every slot sees (evaluation)."""
        if self.modality == "text":
            return self.features(self.pooled(x))
        return self.encode_groups(x.unsqueeze(0).expand(self.groups, *x.shape))

    def encode_groups(self, x: torch.Tensor) -> torch.Tensor:
        """Tabular or image inputs, one batch per group [groups, B, ...] -> features [C, B, hidden]."""
        h = x.unsqueeze(1).expand(self.groups, self.per_group, *x.shape[1:])
        return self.features(h.reshape(self.slots, *x.shape[1:]))

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> [C, B, n_outputs]; ``head_slices`` says which columns belong to a task."""
        return self.arch.stack_decode(self, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs [C, B, n_outputs] of one batch [B, ...] seen by every slot (evaluation)."""
        return self.decode(self.encode(x))

    # -- slots -----------------------------------------------------------------------------------
    def slot_view(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (shaped like parameter ``name``) viewed with the slot axes explicit."""
        if name == "embedding":
            return tensor.view(self.groups, -1, self.per_group, self.embed_dim)
        return tensor

    def slot_state_dict(self, slot: int, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Slot ``slot`` as a MultiTaskModel state dict (heads of ``tasks``, default all)."""
        out = {}
        if self.modality == "text":
            g, i = divmod(slot, self.per_group)
            emb = self.embedding.detach()[g].view(-1, self.per_group, self.embed_dim)[:, i]
            out["encoder.embedding.weight"] = emb.clone()
        out.update(self.arch.stack_state(self, slot, list(tasks if tasks is not None else self.heads)))
        for name in tasks if tasks is not None else self.heads:
            sl = self.head_slices[name]
            out[f"heads.{head_key(name)}.weight"] = self.head_weight.detach()[slot, sl].clone()
            out[f"heads.{head_key(name)}.bias"] = self.head_bias.detach()[slot, sl].clone()
        return out


class BagOfWords:
    """A batch of token ids as a sparse (document x vocabulary) matrix of mean-pooling weights.

    Pooling is then a sparse-dense product with the embedding table, and the
    table's gradient is non-zero only in the batch's distinct tokens: both are
    computed with ``embedding_bag`` so that neither a [B, L, D] tensor nor a
    dense [V, D] gradient is ever built. Entry (doc, token) holds
    count / (non-padding length), which is TextEncoder's masked mean.
    """

    def __init__(self, tokens: torch.Tensor, vocab_size: int):
        b = tokens.shape[0]
        mask = tokens != 0
        lengths = mask.sum(1).clamp(min=1)
        docs_all = torch.arange(b, device=tokens.device).unsqueeze(1).expand_as(tokens)
        keys, counts = torch.unique(docs_all[mask] * vocab_size + tokens[mask], return_counts=True)
        docs, tokens = keys // vocab_size, keys % vocab_size  # sorted by document, then token
        self._index(docs, tokens, counts.to(torch.float32) / lengths[docs], b)

    def _index(self, docs: torch.Tensor, tokens: torch.Tensor, weights: torch.Tensor, b: int) -> None:
        self.docs, self.tokens, self.weights = docs, tokens, weights
        self.doc_offsets = torch.searchsorted(docs, torch.arange(b, device=docs.device))
        self.by_token = torch.argsort(tokens, stable=True)
        self.rows, row_counts = torch.unique_consecutive(tokens[self.by_token], return_counts=True)
        self.row_offsets = torch.cumsum(row_counts, 0) - row_counts

    def select(self, documents: torch.Tensor) -> "BagOfWords":
        """The bag of documents ``documents`` (indices into this bag's), in that order.

        Cheaper than building it from their tokens: a training loop builds the
        bag of the whole training set once and selects each batch from it.
        """
        starts = self.doc_offsets[documents]
        ends = torch.cat([self.doc_offsets[1:], self.doc_offsets.new_tensor([len(self.docs)])])[documents]
        lengths = ends - starts
        docs = torch.repeat_interleave(torch.arange(len(documents), device=starts.device), lengths)
        first = torch.cumsum(lengths, 0) - lengths
        entries = torch.arange(len(docs), device=starts.device) - first[docs] + starts[docs]
        bag = BagOfWords.__new__(BagOfWords)
        bag._index(docs, self.tokens[entries], self.weights[entries], len(documents))
        return bag

    def pool(self, table: torch.Tensor) -> torch.Tensor:
        """[V, W] -> [B, W]: each document's weighted sum of its tokens' rows."""
        return F.embedding_bag(self.tokens, table, self.doc_offsets, mode="sum",
                               per_sample_weights=self.weights.to(table.dtype))

    def table_grad(self, grad_pooled: torch.Tensor) -> torch.Tensor:
        """Gradient of the table's rows ``self.rows`` given d(loss)/d(pool) [B, W] -> [len(rows), W]."""
        return F.embedding_bag(self.docs[self.by_token], grad_pooled, self.row_offsets, mode="sum",
                               per_sample_weights=self.weights[self.by_token].to(grad_pooled.dtype))

