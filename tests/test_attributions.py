"""Attributions: completeness of integrated gradients on every modality, a planted word,
grouping of one-hot columns, global importance, single- vs multi-task comparison, and plots."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from explorer.attributions import get_method, group_index, names
from explorer.data.dataset import Dataset
from explorer.errors import Cancelled, ExplorerError
from explorer.attributions.explain import (compare_attributions, explain, explain_image, explain_row, explain_text,
                              global_importance)
from explorer.plots.attributions import (comparison_strip, importance_heatmap, pixel_heatmaps, waterfall,
                                         word_strip)
from explorer.store.predict import Predictor
from explorer.data.preprocess import ImagePreprocessor, TabularPreprocessor, TextPreprocessor
from explorer.data.tasks import Task
from models import ModelSpec, MultiTaskModel

STEPS = 300  # many steps: the completeness checks below use a tight tolerance
TOPIC = Task("topic", "multiclass", ("a", "b", "c"))
FLAG = Task("flag", "binary", ("no", "yes"))
SCORE = Task("score", "regression")
WORDS = ["<pad>", "<unk>"] + [f"w{i}" for i in range(30)] + ["zebra"]


def _model(modality: str, input_spec: dict, seed: int = 0, hidden: int = 16) -> MultiTaskModel:
    torch.manual_seed(seed)
    heads = {TOPIC.name: 3, FLAG.name: 2, SCORE.name: 1}
    return MultiTaskModel(ModelSpec(modality, input_spec, heads, hidden=hidden, embed_dim=8, dropout=0.0)).eval()


def _text_predictor(seed: int = 0) -> Predictor:
    pre = TextPreprocessor(WORDS, max_len=64)
    return Predictor(_model("text", pre.input_spec, seed), [TOPIC, FLAG, SCORE], pre, {"score": (10.0, 4.0)})


def _tabular_predictor(seed: int = 0) -> Predictor:
    pre = TabularPreprocessor({"age": (40.0, 10.0), "income": (3.0, 2.0)},
                              {"city": ["paris", "rome", "oslo"], "pet": ["cat", "dog"]})
    return Predictor(_model("tabular", pre.input_spec, seed), [TOPIC, FLAG, SCORE], pre, {"score": (0.0, 2.0)})


def _image_predictor(seed: int = 0) -> Predictor:
    pre = ImagePreprocessor(8, 8)
    return Predictor(_model("image", pre.input_spec, seed), [TOPIC, FLAG, SCORE], pre, {"score": (5.0, 1.0)})


def _assert_complete(e, tol: float = 1e-2) -> None:
    """Integrated gradients: base + sum(scores) = output, within tol of the output change."""
    for task in e.tasks:
        total = float(np.sum(e.scores[task]))
        change = e.output[task] - e.base[task]
        assert abs(total - change) <= tol * max(abs(change), 1e-3), (task, total, change)
        assert abs(e.delta[task]) <= tol * max(abs(change), 1e-3)


def test_registry_lists_methods_per_modality():
    assert names("text") == ["lig"]
    assert set(names("tabular")) == {"ig", "ablation", "shapley"}
    assert {"ig", "ablation"} <= set(names("image"))
    with pytest.raises(ExplorerError, match="Choose one of"):
        get_method("shapley", "text")


def test_text_completeness_for_every_head():
    e = explain_text(_text_predictor(), "w1 w2 zebra w3 never-seen w4 w5", n_steps=STEPS)
    assert e.tokens == ["w1", "w2", "zebra", "w3", "never", "seen", "w4", "w5"]
    assert e.known == [True, True, True, True, False, False, True, True]
    assert set(e.scores) == {"topic", "flag", "score"}
    assert all(len(s) == len(e.tokens) for s in e.scores.values())
    _assert_complete(e)
    assert isinstance(e.predicted["score"], float) and e.probability["score"] is None


def test_text_completeness_holds_with_a_nonzero_padding_embedding():
    # The baseline keeps the real input's mask, so f(baseline) is the padding embedding
    # pooled over the document's length, whatever that embedding is.
    p = _text_predictor()
    with torch.no_grad():
        p.model.encoder.embedding.weight[0] = torch.linspace(-1, 1, 8)
    _assert_complete(explain_text(p, "w7 w8 w9 zebra", n_steps=STEPS))


def test_planted_word_gets_the_top_score():
    """A constructed model whose 'flag' head reads one embedding dimension that only 'zebra' sets."""
    p = _text_predictor()
    model, zebra = p.model, WORDS.index("zebra")
    dim, hidden = 8, 16
    with torch.no_grad():
        emb = model.encoder.embedding.weight
        emb[:, 0] = 0.0
        emb[zebra] = 0.0
        emb[zebra, 0] = 3.0
        linear = model.encoder.mlp[1]
        linear.weight.zero_()
        linear.weight[:dim, :dim] = torch.eye(dim)
        linear.bias.zero_()
        flag = model.heads["flag"]
        flag.weight.zero_()
        flag.bias.zero_()
        flag.weight[1, 0], flag.weight[0, 0] = 2.0, -2.0
        model.heads["topic"].weight[:, 0] = 0.0  # the other heads ignore zebra's dimension
    text = "w3 w11 w5 w20 zebra w8 w2 w14 w9"
    e = explain_text(p, text, target={"flag": "yes"})
    flag_scores = np.array(e.scores["flag"])
    assert e.tokens[int(np.argmax(flag_scores))] == "zebra"
    assert flag_scores[e.tokens.index("zebra")] > 0
    assert np.abs(np.delete(flag_scores, e.tokens.index("zebra"))).max() < 1e-6
    assert e.predicted["flag"] == "yes"
    assert abs(e.scores["topic"][e.tokens.index("zebra")]) < 1e-6
    # Explaining the other class flips the sign: zebra is evidence against "no".
    against = explain_text(p, text, tasks=["flag"], target="no")
    assert against.scores["flag"][e.tokens.index("zebra")] < 0


def test_text_rejects_empty_text_unknown_task_and_class():
    p = _text_predictor()
    with pytest.raises(ExplorerError, match="no words"):
        explain_text(p, "  ...  ")
    with pytest.raises(ExplorerError, match="Unknown task"):
        explain_text(p, "w1", tasks=["nope"])
    with pytest.raises(ExplorerError, match="no class 'd'"):
        explain_text(p, "w1", tasks=["topic"], target="d")
    with pytest.raises(ExplorerError, match="per task"):
        explain_text(p, "w1", target="a")


def test_tabular_completeness_and_one_hot_groups():
    p = _tabular_predictor()
    row = {"age": 61.0, "income": np.nan, "city": "rome", "pet": "dog"}
    e = explain_row(p, row, n_steps=STEPS)
    assert e.features == ["age", "income", "city", "pet"]
    assert e.values[2] == "rome"
    _assert_complete(e)
    # Grouped scores are the sums of the one-hot columns' own scores.
    x = p.transform(pd.DataFrame([row]))
    ig = get_method("ig", "tabular")
    target = torch.tensor([0])
    flat = ig(p.model, "topic", x, target, n_steps=STEPS).scores[0]
    groups, _ = group_index(p.preprocessor.feature_groups)
    grouped = ig(p.model, "topic", x, target, groups=groups, n_steps=STEPS).scores[0]
    assert torch.allclose(grouped[2], flat[2:5].sum(), atol=1e-6)
    assert torch.allclose(grouped[3], flat[5:7].sum(), atol=1e-6)


def test_tabular_ablation_scores_a_whole_column_and_shapley_runs():
    p = _tabular_predictor()
    row = {"age": 61.0, "income": 7.0, "city": "oslo", "pet": "cat"}
    e = explain_row(p, row, tasks=["score"], method="ablation")
    assert e.delta["score"] is None and e.method == "ablation"
    x = p.transform(pd.DataFrame([row]))
    ablated = x.clone()
    ablated[0, 2:5] = 0.0  # every level of "city" at once
    with torch.no_grad():
        drop = (p.model(x)["score"] - p.model(ablated)["score"]).item() * 2.0  # std of score
    assert e.scores["score"][2] == pytest.approx(drop, abs=1e-5)
    s = explain_row(p, pd.Series(row), method="shapley")
    assert len(s.scores["topic"]) == 4
    with pytest.raises(ExplorerError, match="lacks column"):
        explain_row(p, {"age": 1.0})


def test_image_completeness_and_shapes():
    p = _image_predictor()
    image = np.random.default_rng(0).uniform(0, 16, (8, 8))
    e = explain_image(p, image, n_steps=STEPS)
    assert e.scores["topic"].shape == (8, 8) and len(e.features) == 64
    _assert_complete(e)
    with pytest.raises(ExplorerError, match="8x8"):
        explain_image(p, np.zeros((4, 4)))


def _text_dataset(n: int = 80) -> Dataset:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS[2:], size=rng.integers(3, 12))) for _ in range(n)]
    y = rng.integers(0, 3, n)
    labels = {"topic": y, "flag": (y == 0).astype(int), "score": rng.normal(size=n)}
    return Dataset("toy", "text", texts, {"topic": TOPIC, "flag": FLAG, "score": SCORE}, labels)


def test_global_importance_text_tabular_image():
    imp = global_importance(_text_predictor(), _text_dataset(), n_rows=30, top_k=10, min_count=2)
    assert imp.tasks == ["topic", "flag", "score"] and imp.matrix.shape == (3, len(imp.features))
    assert 0 < len(imp.features) <= 10 and "<unk>" not in imp.features and (imp.matrix >= 0).all()
    assert imp.n_rows == 16  # the test split of 80 rows
    frame = pd.DataFrame({"age": np.linspace(20, 70, 40), "income": np.linspace(0, 9, 40),
                          "city": ["paris", "rome", "oslo", "rome"] * 10, "pet": ["cat", "dog"] * 20})
    seen = []
    tab = global_importance(_tabular_predictor(), frame, n_rows=25, tasks=["flag"], batch_size=8,
                            progress=lambda e: seen.append((e.done, e.total)))
    assert seen == [(8, 25), (16, 25), (24, 25), (25, 25)]
    with pytest.raises(Cancelled):
        global_importance(_tabular_predictor(), frame, progress=lambda e: False)
    assert tab.features == ["age", "income", "city", "pet"] and tab.matrix.shape == (1, 4)
    assert tab.n_rows == 25 and (tab.matrix > 0).all()
    images = np.random.default_rng(1).uniform(0, 16, (12, 8, 8))
    img = global_importance(_image_predictor(), images, method="ablation")
    assert img.matrix.shape == (3, 64) and img.shape == (8, 8)


def test_global_importance_equals_mean_absolute_row_attribution():
    p = _tabular_predictor()
    frame = pd.DataFrame({"age": [30.0, 50.0, 70.0], "income": [1.0, 5.0, 2.0],
                          "city": ["paris", "oslo", "rome"], "pet": ["cat", "dog", "dog"]})
    imp = global_importance(p, frame, tasks=["score"], n_steps=64)
    rows = [explain_row(p, frame.iloc[[i]], tasks=["score"], n_steps=64).scores["score"] for i in range(3)]
    assert np.allclose(imp.matrix[0], np.abs(np.array(rows)).mean(0), atol=1e-5)


def test_compare_single_and_multi_task_models():
    same = compare_attributions(_text_predictor(0), _text_predictor(0), "w1 w2 w3 zebra w4", "topic")
    assert same.similarity == pytest.approx(1.0) and same.top_overlap == 1.0
    other = compare_attributions(_text_predictor(1), _text_predictor(0), "w1 w2 w3 zebra w4 w9 w10", "topic")
    assert -1.0 <= other.similarity < 1.0
    assert other.single.explained["topic"] == other.multi.explained["topic"]  # same class on both sides
    tab = compare_attributions(_tabular_predictor(1), _tabular_predictor(0),
                               {"age": 30.0, "income": 2.0, "city": "oslo", "pet": "dog"}, "score")
    assert tab.features == ["age", "income", "city", "pet"]
    with pytest.raises(ExplorerError, match="no task"):
        compare_attributions(_text_predictor(), _text_predictor(), "w1", "missing")


def test_plots_build_figures():
    text = explain(_text_predictor(), "w1 w2 zebra w3")
    fig = word_strip(text, wrap=3)
    assert isinstance(fig, go.Figure) and len(fig.data) == 3
    assert fig.data[0].z.shape == (2, 3) and fig.data[0].text[0][2] == "zebra"
    row = explain_row(_tabular_predictor(), {"age": 61.0, "income": 2.0, "city": "rome", "pet": "dog"})
    wf = waterfall(row, "score", top_k=2)
    assert wf.data[0].measure[0] == "absolute" and wf.data[0].measure[-1] == "total"
    assert wf.data[0].x[-1] == pytest.approx(row.output["score"])
    assert "2 other columns" in wf.data[0].y
    pix = pixel_heatmaps(explain_image(_image_predictor(), np.ones((8, 8))))
    assert len(pix.data) == 4  # the image and one map per task
    imp = global_importance(_tabular_predictor(), pd.DataFrame(
        {"age": [30.0, 50.0], "income": [1.0, 5.0], "city": ["paris", "oslo"], "pet": ["cat", "dog"]}))
    heat = importance_heatmap(imp)
    assert list(heat.data[0].y) == ["topic", "flag", "score"] and np.nanmax(heat.data[0].z) == pytest.approx(1.0)
    cmp = compare_attributions(_text_predictor(1), _text_predictor(0), "w1 w2 w3", "topic")
    assert len(comparison_strip(cmp).data) == 2
