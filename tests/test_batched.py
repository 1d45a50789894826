import numpy as np
import pytest
import torch

from explorer.training.batched import build_stack, train_combinations
from explorer.relatedness.combos import restrict
from explorer.datasets import load_dataset
from explorer.errors import Cancelled, ExplorerError
from explorer.training.metrics import primary
from explorer.training.progress import ProgressEvent
from explorer.training.trainer import TrainConfig, model_spec, prepare
from models import MultiTaskModel
from models.seeded import seed_model
from models.stacked import BagOfWords
from tests.helpers import tiny_digits

COMBOS = [("digit",), ("even",), ("ink",), ("digit", "even"), ("even", "ink")]


@pytest.fixture(scope="module")
def digits():
    return tiny_digits(missing_even=0.2)


@pytest.fixture(scope="module")
def news():
    return load_dataset("news")


def _trajectory(run):
    return [(h["epoch"], h["train"], h["val"]) for h in run.history]


def _assert_same_runs(a, b, tol=1e-4):
    assert [(r.tasks, r.seed) for r in a] == [(r.tasks, r.seed) for r in b]
    for x, y in zip(a, b):
        assert x.best_epoch == y.best_epoch
        assert len(x.history) == len(y.history)
        for (ex, tx, vx), (ey, ty, vy) in zip(_trajectory(x), _trajectory(y)):
            assert ex == ey and tx.keys() == ty.keys() and vx.keys() == vy.keys()
            for k in tx:
                assert tx[k] == pytest.approx(ty[k], rel=tol, abs=tol)
                assert vx[k] == pytest.approx(vy[k], rel=tol, abs=tol)
        assert x.task_epoch == y.task_epoch  # per-task checkpointing picks the same epochs in both modes
        for task in x.tasks:
            assert primary(x.metrics[task]) == pytest.approx(primary(y.metrics[task]), abs=0.02)
            assert primary(x.model_metrics[task]) == pytest.approx(primary(y.model_metrics[task]), abs=0.02)
            assert (np.asarray(x.test_pred[task]) == np.asarray(y.test_pred[task])).mean() > 0.95 \
                if x.test_pred[task].dtype.kind == "i" else \
                np.allclose(x.test_pred[task], y.test_pred[task], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["digits", "news"])
def test_stack_slot_starts_as_the_sequential_model(name, digits, news):
    dataset, combos = (digits, COMBOS) if name == "digits" else (news, [("outlet",), ("funding", "outlet")])
    config = TrainConfig(train_size=60, hidden=8, embed_dim=8).resolve(dataset.modality)
    tasks = list(dict.fromkeys(t for c in combos for t in c))
    prepared = prepare(dataset, tasks, config)
    stack = build_stack(prepared, combos, config, [3, 7])
    for s, seed in enumerate([3, 7]):
        for i, combo in enumerate(combos):
            reference = seed_model(MultiTaskModel(model_spec(restrict(prepared, combo), config)), seed).state_dict()
            slot = stack.slot_state_dict(s * len(combos) + i, list(combo))
            assert slot.keys() == reference.keys()
            for key in reference:
                assert torch.equal(slot[key], reference[key]), key
    # heads of tasks outside a combination are zero (and stay so: they never get a loss)
    absent = next(t for t in tasks if t not in combos[0])
    assert torch.count_nonzero(stack.slot_state_dict(0)[f"heads.{absent}.weight"]) == 0


def test_batched_is_the_sequential_computation_without_dropout(digits):
    """With dropout off, both modes run the same arithmetic: same losses, early stopping and metrics."""
    config = TrainConfig(epochs=4, patience=1, train_size=200, hidden=16, dropout=0.0, lr=0.03)
    seq = train_combinations(digits, COMBOS, config, [0, 1], mode="sequential")
    bat = train_combinations(digits, COMBOS, config, [0, 1], mode="batched")
    _assert_same_runs(seq, bat)


@pytest.mark.parametrize("kernels", ["numba", "torch ops"])
def test_batched_text_is_the_sequential_computation_without_dropout(kernels, news, monkeypatch):
    """The bag-of-words gradients and the lazy-row Adam give what nn.Embedding and torch Adam give,
    with the compiled row kernels and with the torch-ops fallback."""
    import explorer.training.row_kernels

    if kernels == "torch ops":
        monkeypatch.setattr(explorer.training.row_kernels, "load", lambda: None)
    else:
        assert explorer.training.row_kernels.load() is not None, "numba is pinned in requirements.txt"
    combos = [("outlet",), ("funding",), ("outlet", "funding")]
    config = TrainConfig(epochs=3, patience=0, train_size=200, hidden=8, embed_dim=8, dropout=0.0, max_len=64)
    _assert_same_runs(train_combinations(news, combos, config, [5], mode="sequential"),
                      train_combinations(news, combos, config, [5], mode="batched"))


def test_bag_of_words_pools_like_the_text_encoder():
    torch.manual_seed(0)
    tokens = torch.tensor([[3, 3, 5, 0, 0], [1, 0, 0, 0, 0], [2, 4, 2, 4, 6]])
    table = torch.randn(7, 4)
    table[0] = 0
    mask = (tokens != 0).unsqueeze(-1).float()
    expected = (table[tokens] * mask).sum(1) / mask.sum(1)
    bag = BagOfWords(tokens, 7)
    assert torch.allclose(bag.pool(table), expected, atol=1e-6)
    leaf = table.clone().requires_grad_()
    g = torch.randn(3, 4)
    ((leaf[tokens] * mask).sum(1) / mask.sum(1) * g).sum().backward()
    assert bag.rows.tolist() == [1, 2, 3, 4, 5, 6]
    assert torch.allclose(bag.table_grad(g), leaf.grad[bag.rows], atol=1e-6)
    # a batch selected from the bag of every document is the bag built from its own tokens
    batch = torch.tensor([2, 0])
    selected, built = bag.select(batch), BagOfWords(tokens[batch], 7)
    for name in ("docs", "tokens", "weights", "doc_offsets", "rows", "row_offsets"):
        assert torch.equal(getattr(selected, name), getattr(built, name)), name
    assert torch.allclose(selected.pool(table), expected[batch], atol=1e-6)
    # a document of padding only is an empty bag, wherever it stands
    padded = torch.tensor([[0, 0], [3, 3], [0, 0]])
    for batch in (torch.tensor([1, 0, 2]), torch.tensor([2, 1])):
        selected, built = BagOfWords(padded, 7).select(batch), BagOfWords(padded[batch], 7)
        for name in ("docs", "tokens", "weights", "doc_offsets", "rows", "row_offsets"):
            assert torch.equal(getattr(selected, name), getattr(built, name)), name


def test_batched_is_the_sequential_computation_at_the_default_settings(digits):
    """Dropout, class weights and weight averaging on (the defaults): each slot draws the masks its
    model draws alone and weighs and averages as it does, so the runs agree."""
    assert TrainConfig().dropout > 0 and TrainConfig().balance > 0 and TrainConfig().ema > 0
    config = TrainConfig(epochs=3, train_size=300)
    seq = train_combinations(digits, COMBOS, config, [0, 1], mode="sequential")
    bat = train_combinations(digits, COMBOS, config, [0, 1], mode="batched")
    _assert_same_runs(seq, bat)


def test_batched_text_is_the_sequential_computation_at_the_default_settings(news):
    combos = [("outlet",), ("funding",), ("outlet", "funding")]
    config = TrainConfig(epochs=3, train_size=200, max_len=64)
    assert config.dropout > 0 and config.balance > 0 and config.ema > 0
    _assert_same_runs(train_combinations(news, combos, config, [5, 6], mode="sequential"),
                      train_combinations(news, combos, config, [5, 6], mode="batched"))


def test_each_run_reports_only_its_own_tasks(digits):
    config = TrainConfig(epochs=1, train_size=80, hidden=8)
    runs = train_combinations(digits, COMBOS, config, [0, 2])
    assert [(r.tasks, r.seed) for r in runs] == [(c, s) for s in (0, 2) for c in COMBOS]
    for r in runs:
        assert set(r.metrics) == set(r.tasks)
        assert all(set(h["val"]) <= set(r.tasks) and set(h["train"]) <= set(r.tasks) for h in r.history)
        assert {"primary", "n"} <= set(r.metrics[r.tasks[0]])


@pytest.mark.parametrize("mode", ["batched", "sequential"])
def test_progress_reports_and_cancels(mode, digits):
    config = TrainConfig(epochs=3, train_size=80, hidden=8)
    events = []
    train_combinations(digits, COMBOS[:2], config, [0], mode=mode, progress=events.append)
    assert events and all(isinstance(e, ProgressEvent) and e.phase == "train" for e in events)
    assert [e.done for e in events] == sorted(e.done for e in events) and events[-1].fraction == 1.0
    with pytest.raises(Cancelled):
        train_combinations(digits, COMBOS[:2], config, [0], mode=mode, progress=lambda e: False)


def test_batched_mode_refuses_other_methods(digits):
    with pytest.raises(ExplorerError, match="sequential"):
        train_combinations(digits, COMBOS[:2], TrainConfig(method="pcgrad"), [0], mode="batched")


def test_bad_arguments_are_explained(digits):
    config = TrainConfig(epochs=1, train_size=50, hidden=8)
    with pytest.raises(ExplorerError, match="mode"):
        train_combinations(digits, COMBOS, config, [0], mode="parallel")
    with pytest.raises(ExplorerError, match="seed"):
        train_combinations(digits, COMBOS, config, [])
    with pytest.raises(ExplorerError, match="nope"):
        train_combinations(digits, [("digit", "nope")], config, [0])


@pytest.mark.parametrize("name", ["digits", "news", "diamonds"])
def test_extracted_slot_model_predicts_as_the_stack(name, digits, news):
    from explorer.training.batched import slot_model

    if name == "diamonds":
        dataset, combos = load_dataset("diamonds"), [("price",), ("price", "cut")]
    else:
        dataset, combos = (digits, COMBOS) if name == "digits" else (news, [("outlet",), ("funding", "outlet")])
    config = TrainConfig(train_size=60, hidden=8, embed_dim=8).resolve(dataset.modality)
    tasks = list(dict.fromkeys(t for c in combos for t in c))
    prepared = prepare(dataset, tasks, config)
    stack = build_stack(prepared, combos, config, [3, 7])
    with torch.no_grad():  # every slot different from its initialisation, as after training
        for p in stack.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = prepared.x["test"][:50]
    stacked = stack.eval()(x)
    for c in range(stack.slots):
        combo = combos[c % len(combos)]
        model = slot_model(stack, c, restrict(prepared, combo), config)
        assert list(model.heads) == list(combo)
        with torch.no_grad():
            out = model(x)
        for task in combo:
            torch.testing.assert_close(out[task], stacked[c][:, stack.head_slices[task]], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["batched", "sequential"])
def test_kept_models_score_as_reported_and_save_as_runs(mode, digits):
    from explorer.relatedness.combos import to_train_result
    from explorer.store.runs import load_run, save_run
    from explorer.training.trainer import evaluate

    config = TrainConfig(epochs=2, train_size=80, hidden=8, dropout=0.0).resolve(digits.modality)
    combos = [("digit",), ("digit", "even")]
    prepared = prepare(digits, ["digit", "even"], config)
    runs = train_combinations(digits, combos, config, [0, 1], mode=mode, prepared=prepared, keep_models=True)
    assert all(r.model is not None for r in runs)
    assert all(r.model is None for r in train_combinations(digits, combos[:1], config, [0], mode=mode,
                                                           prepared=prepared))
    for run in runs:
        again = evaluate(run.model, restrict(prepared, run.tasks), "test", "cpu")
        for task in run.tasks:  # the kept weights score what the run says they score
            assert primary(again[task]) == pytest.approx(primary(run.model_metrics[task]), abs=1e-9)
            if run.task_epoch[task] == run.best_epoch:  # per-task checkpoint at the same epoch: same score
                assert primary(run.metrics[task]) == pytest.approx(primary(run.model_metrics[task]), abs=1e-9)
    saved = load_run(save_run(to_train_result(runs[-1], prepared, config, digits)).id)
    assert [t.name for t in saved.tasks] == ["digit", "even"] and saved.config["train"]["seed"] == 1
    assert primary(saved.metrics["test"]["digit"]) == pytest.approx(primary(runs[-1].model_metrics["digit"]),
                                                                    abs=1e-12)
    for key, value in runs[-1].model.state_dict().items():
        assert torch.equal(saved.model().state_dict()[key], value)
