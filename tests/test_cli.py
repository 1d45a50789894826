import json
import subprocess
import sys
from pathlib import Path

from explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_train_prints_metrics_json_last_and_saves_run(capsys, run_store):
    code = main(["train", "--dataset", "digits", "--tasks", "digit,even", "--epochs", "1", "--hidden", "16"])
    out = capsys.readouterr()
    assert code == 0
    result = json.loads(out.out.strip().splitlines()[-1])
    assert set(result["metrics"]) == {"digit", "even"}
    assert (run_store / result["run"] / "model.safetensors").is_file()
    assert "epoch 1/1" in out.err  # the progress bar goes to stderr


def test_bad_input_is_one_line_not_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "explorer", "train", "--dataset", "digits", "--tasks", "colour"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: Unknown task(s) 'colour'" in proc.stderr


def test_unknown_dataset(capsys):
    assert main(["train", "--dataset", "mnist", "--tasks", "a"]) == 2
    assert "Unknown dataset 'mnist'" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    from explorer.commands import discover
    for name in discover():
        try:
            main([name, "--help"])
        except SystemExit as e:
            assert e.code == 0
        assert "usage: python -m explorer " + name in capsys.readouterr().out


def test_datasets_lists_tasks(capsys):
    assert main(["datasets", "--json"]) == 0
    listed = {d["name"]: [t["task"] for t in d["tasks"]] for d in json.loads(capsys.readouterr().out)}
    assert {"news", "hotels", "diamonds", "digits"} <= set(listed)
    assert "outlet" in listed["news"] and "price" in listed["diamonds"]



def test_gains_keep_at_chance_flag_puts_the_task_at_chance_into_delta_m(capsys):
    # a setting where digit's single-task model stays at chance (tests/test_together.py)
    args = ["gains", "--dataset", "digits", "--tasks", "digit,even", "--seeds", "2", "--epochs", "3",
            "--hidden", "16", "--train-size", "150", "--no-save", "--no-reuse", "--json"]
    assert main(args) == 0
    off = json.loads(capsys.readouterr().out)
    assert main(args + ["--keep-at-chance"]) == 0
    on = json.loads(capsys.readouterr().out)
    assert off["keep_at_chance"] is False and on["keep_at_chance"] is True
    assert off["gains"]["digit"]["at_chance"] and off["gains"]["digit"]["mean"] is None
    assert on["gains"]["digit"]["at_chance"] and on["gains"]["digit"]["mean"] is not None
    assert on["delta_m"] == (on["gains"]["digit"]["mean"] + on["gains"]["even"]["mean"]) / 2


def test_output_cut_short_by_a_pipe_is_not_a_traceback(monkeypatch):
    import io
    import os
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone, as after `| head -1`
    stdout = io.TextIOWrapper(io.FileIO(write_end, "w"), line_buffering=True)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["datasets"]) == 0
