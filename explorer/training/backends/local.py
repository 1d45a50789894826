"""The default backend: this process, with the batched trainer as it is."""
from __future__ import annotations

from explorer.training.backends import Backend

NAME = "local"
HELP = "train in this process (default)"


class LocalBackend(Backend):
    name = NAME

    def train_combinations(self, *args, **kwargs):
        from explorer.training.batched import train_combinations
        return train_combinations(*args, **kwargs)


def make(address: str | None = None) -> LocalBackend:
    return LocalBackend()
