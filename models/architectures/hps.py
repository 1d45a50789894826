"""Hard parameter sharing: every task's head reads the same encoder output (the default)."""
from models.architectures import Architecture, register


@register
class HardSharing(Architecture):
    name = "hps"
    description = "Hard parameter sharing: one shared encoder, a linear head per task."
