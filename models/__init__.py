"""Networks: one shared encoder per input modality plus one small head per task.

Hard parameter sharing: every task reads the same encoder output. The same class
serves a single task and any combination; only the set of heads changes.
"""
from models.encoders import ENCODERS, ImageEncoder, TabularEncoder, TextEncoder
from models.multitask import ModelSpec, MultiTaskModel

__all__ = ["ENCODERS", "ImageEncoder", "ModelSpec", "MultiTaskModel", "TabularEncoder",
           "TextEncoder"]
