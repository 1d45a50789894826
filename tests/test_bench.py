import json

import pytest

from explorer.bench import format_table, pairwise, run_bench
from explorer.cli import main
from explorer.datasets import load_dataset


def test_pairwise_is_singles_then_pairs():
    assert pairwise(["a", "b", "c"]) == [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")]


def test_bench_times_both_modes_on_a_tiny_sweep():
    result = run_bench(load_dataset("digits"), n_tasks=2, epochs=1, train_size=60)
    assert result["combinations"] == 3 and result["models"] == 3
    for mode in ("batched", "sequential"):
        assert result[mode]["seconds"] > 0 and result[mode]["gflops"] > 0
        assert 0 < result[mode]["share_of_matmul_peak"] < 1 and result[mode]["share_of_roofline"] > 0
    assert 0 < result["roofline_gflops"] <= result["matmul_gflops"]
    assert result["speedup"] > 0 and result["matmul_gflops"] > 0 and result["model_flops"] > 0
    table = format_table(result)
    assert "batched" in table and "sequential" in table and "faster" in table and "roofline" in table


def test_bench_command_prints_json(capsys):
    assert main(["bench", "--dataset", "digits", "--tasks", "2", "--epochs", "1", "--train-size", "60",
                 "--mode", "batched"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["dataset"] == "digits" and "batched" in out and "sequential" not in out


def test_bench_refuses_a_single_task(capsys):
    assert main(["bench", "--dataset", "digits", "--tasks", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_minimum_traffic_counts_adam_on_touched_embedding_rows():
    import torch

    from explorer.bench import ADAM_BYTES, minimum_traffic
    from explorer.training.trainer import TrainConfig, model_spec, prepare
    from models import MultiTaskModel

    config = TrainConfig(epochs=2, train_size=100, batch_size=32, embed_dim=4, hidden=4, max_len=32).resolve("text")
    prepared = prepare(load_dataset("news"), ["outlet"], config)
    x = prepared.x["train"]
    batches = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).split(32)
    touched = sum(len(torch.unique(x[b][x[b] != 0])) for b in batches) / len(batches)
    model = MultiTaskModel(model_spec(prepared, config))
    dense = sum(p.numel() for name, p in model.named_parameters() if "embedding" not in name)
    steps = 2 * len(batches)
    traffic = minimum_traffic(prepared, [("outlet",)], config)
    assert traffic["touched_rows_per_step"] == pytest.approx(touched, abs=0.05)
    assert traffic["bytes"] == pytest.approx(steps * (dense + touched * 4) * ADAM_BYTES, rel=1e-3)


def test_bench_load_times_the_sweep_alone_and_beside_a_cpu_load(capsys):
    assert main(["bench", "--dataset", "digits", "--tasks", "2", "--epochs", "1", "--train-size", "60",
                 "--seeds", "1", "--load"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["load_processes"] == 1 and out["alone_seconds"] > 0 and out["loaded_seconds"] > 0
    assert out["slowdown"] == pytest.approx(out["loaded_seconds"] / out["alone_seconds"], rel=0.2)
    assert out["fair_slowdown"] >= 1 and "slowdown" in captured.err


def test_bench_minilm_embeds_in_a_fresh_process_and_reports_its_peak_memory(capsys):
    assert main(["bench", "--minilm", "--rows", "8"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["dataset"] == "news" and out["texts"] == 8 and out["dim"] == 384
    # the child's own peak: above what it held before the pass (torch and the model load in it), not ours
    assert out["peak_rss_mib"] > out["rss_before_mib"] > 0 and out["seconds"] > 0
    assert out["within_bounds"] == (out["peak_rss_mib"] < 2048 and out["seconds"] < 180)
    assert "minilm embedding pass" in captured.err and "bound 2048 MiB" in captured.err


def test_bench_minilm_refuses_tabular_data_and_rows_without_it(capsys):
    assert main(["bench", "--minilm", "--dataset", "digits", "--rows", "4"]) == 2
    assert main(["bench", "--dataset", "digits", "--rows", "4"]) == 2
    err = capsys.readouterr().err
    assert "embeds texts; 'digits' is image data" in err and "--rows only applies with --minilm." in err


def test_power_bench_counts_resolved_cells_of_both_arms_on_the_same_tasks(capsys):
    """Digits' first three tasks at 200 rows: both arms test the same six cells, the adaptive arm stays near
    the fixed arm's wall time (it is its budget) and says how many models it added."""
    from explorer.bench import format_power, power_bench

    result = power_bench(load_dataset("digits"), n_tasks=3, train_size=200, fixed_seeds=3, replicates=2)
    fixed, adaptive = result["fixed"], result["adaptive"]
    assert fixed["cells"] == adaptive["cells"] == 12 and result["tasks"] == ["digit", "even", "ge5"]
    assert [p["fixed"]["cells"] for p in result["per_replicate"]] == [6, 6]
    assert fixed["resolved"] == sum(p["fixed"]["resolved"] for p in result["per_replicate"])
    assert 0 <= fixed["resolved"] <= 12 and 0 <= adaptive["resolved"] <= 12 and adaptive["models_added"] >= 0
    # a verdict at the false discovery rate is also a separate 95 % finding, never the other way round
    assert fixed["uncorrected"] >= fixed["resolved"]
    assert f"{fixed['resolved']}/12" in format_power(result) and "2 replicates" in format_power(result)
    assert main(["bench", "--dataset", "digits", "--power", "--fixed-seeds", "2"]) == 2
    assert "--fixed-seeds must be a whole number above 2" in capsys.readouterr().err
    assert main(["bench", "--dataset", "digits", "--power", "--replicates", "0"]) == 2
    assert "--replicates must be a whole number >= 1" in capsys.readouterr().err
