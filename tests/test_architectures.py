"""The architecture registry: every architecture on every modality, batched == sequential, ONNX, bundles."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.errors import ExplorerError
from explorer.store import export
from explorer.store.bundle import load_bundle
from explorer.store.runs import load_run, reuse_key, save_run
from explorer.training.batched import train_combinations
from explorer.training.trainer import TrainConfig, train
from models import ModelSpec, MultiTaskModel
from models.architectures import names
from models.seeded import seed_model
from tests.helpers import tiny_digits
from tests.test_batched import _assert_same_runs
from tests.test_export import DATASETS

ARCHS = names()
TINY = TrainConfig(epochs=2, hidden=8, embed_dim=8, batch_size=32, device="cpu")


def test_registry_lists_the_default_first_and_rejects_unknown_names():
    assert ARCHS[0] == "hps" and {"mmoe", "towers"} <= set(ARCHS)
    with pytest.raises(ExplorerError, match="Unknown architecture 'moe'.*hps"):
        TrainConfig(arch="moe").validate()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("modality", list(DATASETS))
def test_each_architecture_trains_on_each_modality(arch, modality):
    make, tasks = DATASETS[modality]
    config = TrainConfig(epochs=3, hidden=8, embed_dim=8, batch_size=16, lr=0.01, patience=0, device="cpu", arch=arch)
    result = train(make(), tasks, config)
    initial = seed_model(MultiTaskModel(result.model.spec), config.seed).state_dict()
    assert result.model.spec.arch == arch and result.config.arch == arch
    # every task's own parameters moved (its head, and its tower or gate where it has one)
    for name, value in result.model.state_dict().items():
        assert not torch.equal(value, initial[name]), f"{name} was not trained"
    first, last = result.history[0]["train"], result.history[-1]["train"]
    assert all(np.isfinite(v) for v in last.values()) and sum(last.values()) < sum(first.values())
    assert set(result.metrics) == set(tasks)


def test_hps_is_todays_model():
    """The default builds the very layers (and initial weights) hard sharing always had."""
    spec = ModelSpec("tabular", {"n_features": 5}, {"a": 2, "b": 1}, hidden=8)
    state = seed_model(MultiTaskModel(spec), 0).state_dict()
    assert list(state) == ["encoder.mlp.0.weight", "encoder.mlp.0.bias", "encoder.mlp.3.weight",
                           "encoder.mlp.3.bias", "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert ModelSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "arch"}).arch == "hps"


def test_architecture_is_part_of_the_reuse_key_except_the_default():
    hps, mmoe = TrainConfig(), TrainConfig(arch="mmoe")
    assert reuse_key("f", ["a"], hps) != reuse_key("f", ["a"], mmoe)
    # runs stored before architectures existed (no 'arch' or 'experts' in the config) keep their key
    import hashlib, json
    old = {k: v for k, v in hps.to_dict().items() if k not in ("device", "arch", "experts")}
    blob = json.dumps({"data": "f", "tasks": ["a"], "config": old}, sort_keys=True)
    assert reuse_key("f", ["a"], hps) == hashlib.sha256(blob.encode()).hexdigest()[:20]


COMBOS = [("digit",), ("even",), ("digit", "even"), ("even", "ink")]


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_is_sequential_per_architecture_image(arch):
    """Dropout on: each slot draws its model's masks (experts one after another), so both modes agree."""
    digits = tiny_digits(missing_even=0.2)
    config = TrainConfig(epochs=2, train_size=150, hidden=8, arch=arch)
    assert config.dropout > 0
    _assert_same_runs(train_combinations(digits, COMBOS, config, [0, 1], mode="sequential"),
                      train_combinations(digits, COMBOS, config, [0, 1], mode="batched"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("modality", ["text", "tabular"])
def test_batched_is_sequential_per_architecture(arch, modality):
    make, tasks = DATASETS[modality]
    combos = [(tasks[0],), (tasks[1],), tuple(tasks)]
    config = TrainConfig(epochs=2, hidden=8, embed_dim=8, batch_size=16, arch=arch)
    dataset = make()
    _assert_same_runs(train_combinations(dataset, combos, config, [3], mode="sequential"),
                      train_combinations(dataset, combos, config, [3], mode="batched"))


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "hps"])  # hps: tests/test_export.py
@pytest.mark.parametrize("modality", list(DATASETS))
def test_onnx_parity_and_bundle_per_architecture(arch, modality, tmp_path):
    make, tasks = DATASETS[modality]
    dataset = make()
    result = train(dataset, tasks, TrainConfig(epochs=1, hidden=8, embed_dim=8, device="cpu", arch=arch))
    run = save_run(result, tmp_path / "runs")
    assert load_run(run.id, tmp_path / "runs").config["train"]["arch"] == arch
    info = export.export_bundle(run, tmp_path / "b.zip", store=tmp_path / "runs")
    assert info.onnx_max_error <= export.PARITY_LIMIT
    bundle = load_bundle(tmp_path / "b.zip")
    assert bundle.config["model"]["arch"] == arch
    rows = dataset.subset_rows(np.arange(10))
    x = result.preprocessor.transform(rows)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model.eval()(x), result.model.eval()(x))
    # the ONNX graph in the bundle computes what the loaded PyTorch model computes
    assert export.onnx_parity(bundle.onnx_bytes, bundle.model, export.check_batch(bundle.model)) <= export.PARITY_LIMIT


@pytest.mark.parametrize("arch", ARCHS)
def test_word_attributions_go_through_towers_and_gates(arch):
    """Integrated gradients on the token embeddings add up to the task's output (completeness),
    which only holds when the attributed function is the model's, towers and gates included."""
    from explorer.attributions.text_lig import attribute

    spec = ModelSpec("text", {"vocab_size": 30}, {"a": 3, "b": 1}, hidden=8, embed_dim=8, arch=arch)
    model = seed_model(MultiTaskModel(spec), 0).eval()
    x = torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]])
    for task, target in (("a", torch.tensor([2, 0])), ("b", torch.tensor([0, 0]))):
        result = attribute(model, task, x, target, n_steps=200)
        with torch.no_grad():
            mask = (x != 0).unsqueeze(-1).float()
            full = model(x)[task].gather(1, target[:, None])[:, 0]
            base = model.decode(model.encoder(torch.zeros_like(x), mask))[task].gather(1, target[:, None])[:, 0]
        torch.testing.assert_close(result.scores.sum(1), full - base, atol=2e-3, rtol=1e-2)


def test_sweep_per_architecture_holds_each_matrix_and_the_changed_verdicts():
    from explorer.relatedness.by_arch import run_arch_sweep
    from explorer.relatedness.sweep import parse_report, run_sweep, save_report

    digits = tiny_digits()
    config = TrainConfig(epochs=3, train_size=300, hidden=16, lr=0.03)  # every task above chance: gains exist
    kwargs = dict(seeds=2, affinity=False, surrogate_subsets=0)
    events = []
    report = run_arch_sweep(digits, ["digit", "even", "ink"], archs="hps,mmoe", config=config,
                            progress=events.append, **kwargs)
    assert list(report.by_arch) == ["hps", "mmoe"]
    alone = run_sweep(digits, ["digit", "even", "ink"], config=replace(config, arch="mmoe"), **kwargs)
    mmoe = report.by_arch["mmoe"]
    assert mmoe["pair_gain"] == alone.pair_gain and mmoe["pair_verdict"] == alone.pair_verdict
    assert mmoe["config"]["arch"] == "mmoe" and report.config["arch"] == "hps"
    assert report.pair_gain == report.by_arch["hps"]["pair_gain"] != mmoe["pair_gain"]
    assert mmoe["cells"] == 6 and mmoe["resolved"] == mmoe["positive"] + mmoe["negative"]
    changed = {(c["task"], c["partner"]) for c in report.arch_changes}
    for i, a in enumerate(report.tasks):
        for j, b in enumerate(report.tasks):
            if i != j:
                differs = report.by_arch["hps"]["pair_verdict"][i][j] != mmoe["pair_verdict"][i][j]
                assert ((a, b) in changed) == differs
    # one bar over both architectures, ending full
    assert events[-1].done == events[-1].total and all(e.done <= e.total for e in events)
    assert any(e.message.startswith("mmoe") for e in events)
    assert parse_report(__import__("json").dumps(report.to_dict())).by_arch.keys() == {"hps", "mmoe"}


def test_cli_sweep_arch_list_and_a_bad_name(tmp_path, capsys):
    from explorer.cli import main

    out = tmp_path / "r.json"
    assert main(["sweep", "--dataset", "digits", "--tasks", "digit,even", "--arch", "hps,moe", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Unknown architecture 'moe'" in err[0] and not out.exists()
    assert main(["sweep", "--dataset", "digits", "--tasks", "digit,even", "--arch", "towers,hps", "--seeds", "2",
                 "--epochs", "1", "--train-size", "100", "--no-affinity", "--out", str(out)]) == 0
    import json
    report = json.loads(out.read_text())
    assert list(report["by_arch"]) == ["towers", "hps"] and report["config"]["arch"] == "towers"
    assert "by architecture" in capsys.readouterr().out


def test_relatedness_page_compares_architectures_and_train_page_offers_them():
    from explorer.datasets import load_dataset
    from explorer.relatedness.by_arch import run_arch_sweep
    from tests.test_app import DIGITS, assert_clean, open_page

    report = run_arch_sweep(load_dataset("digits"), ["digit", "even"], archs=["hps", "towers"],
                            config=TrainConfig(epochs=1, train_size=100, hidden=8), seeds=2, affinity=False,
                            surrogate_subsets=0).to_dict()
    at = open_page("relatedness", **DIGITS, sweep_report=report)
    assert_clean(at)
    assert set(at.multiselect(key="rel_archs").options) == set(ARCHS)
    assert any("Compare architectures" in m.value for m in at.markdown)
    table = next(d.value for d in at.dataframe if "architecture" in d.value.columns)
    assert list(table["architecture"]) == ["hps", "towers"]
    at = open_page("train", **DIGITS)
    assert at.selectbox(key="train_arch").options == ARCHS


def test_mmoe_experts_come_from_the_config_in_both_trainers_and_survive_a_save(tmp_path):
    digits = tiny_digits()
    config = TrainConfig(epochs=1, train_size=120, hidden=8, arch="mmoe", experts=2)
    sequential = train_combinations(digits, COMBOS[2:], config, [0], mode="sequential")
    _assert_same_runs(sequential, train_combinations(digits, COMBOS[2:], config, [0], mode="batched"))
    result = train(digits, ["digit", "even"], config)
    assert len(result.model.encoder.experts) == 2 and result.model.spec.extra == {"experts": 2}
    assert len(load_run(save_run(result, tmp_path).id, tmp_path).model().encoder.experts) == 2
    # the other architectures ignore the setting; the default count keeps the keys runs had before it
    assert MultiTaskModel(ModelSpec("tabular", {"n_features": 3}, {"a": 1}, arch="hps")).spec.extra == {}
    assert reuse_key("f", ["a"], TrainConfig(arch="mmoe", experts=4)) == reuse_key("f", ["a"], TrainConfig(arch="mmoe"))
    assert reuse_key("f", ["a"], TrainConfig(experts=2)) == reuse_key("f", ["a"], TrainConfig())
    assert reuse_key("f", ["a"], config) != reuse_key("f", ["a"], TrainConfig(arch="mmoe", train_size=120, hidden=8,
                                                                             epochs=1))


@pytest.mark.parametrize("value", [0, 17])
def test_a_bad_number_of_experts_is_one_sentence_before_any_data_loads(value, tmp_path, capsys):
    from explorer.cli import main

    assert main(["sweep", "--dataset", "news", "--tasks", "outlet,funding", "--arch", "hps,mmoe", "--encoder",
                 "minilm", "--experts", str(value), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: experts must be between 1 and 16, got {value}. It is the number of MMoE experts "
                   "(default 4)."]


def test_pages_offer_the_text_encoder_for_text_and_the_experts_for_mmoe():
    from tests.test_app import DIGITS, errors, open_page

    at = open_page("train")  # news: text
    assert at.selectbox(key="train_encoder").value == "bow"
    assert not [s for s in at.slider if s.key == "train_experts"]
    at.selectbox(key="train_arch").set_value("mmoe").run()
    assert at.slider(key="train_experts").value == 4
    at = open_page("relatedness", **DIGITS)  # not text: no encoder to choose
    assert not [s for s in at.selectbox if s.key == "rel_encoder"]
    at.multiselect(key="rel_archs").set_value(["hps", "mmoe"]).run()
    assert at.slider(key="rel_experts").value == 4 and not errors(at)
