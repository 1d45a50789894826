import json

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
        assert 0 < result[mode]["share_of_matmul_peak"] < 1
    assert result["speedup"] > 0 and result["matmul_gflops"] > 0 and result["model_flops"] > 0
    table = format_table(result)
    assert "batched" in table and "sequential" in table and "faster" in table


def test_bench_command_prints_json(capsys):
    assert main(["bench", "--dataset", "digits", "--tasks", "2", "--epochs", "1", "--train-size", "60",
                 "--mode", "batched"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["dataset"] == "digits" and "batched" in out and "sequential" not in out


def test_bench_refuses_a_single_task(capsys):
    assert main(["bench", "--dataset", "digits", "--tasks", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
