"""The ray backend: the same report as local, a killed worker survived, bad data failing fast, a bad address."""
import itertools
import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from explorer.cli import main
from explorer.errors import ExplorerError
from explorer.relatedness.sweep import run_sweep
from explorer.training.backends import check_backend, chunks, rectangles
from explorer.training.trainer import TrainConfig, prepare

TINY = TrainConfig(epochs=1, hidden=16, train_size=300, batch_size=64)  # 5 steps per model
TASKS = ["digit", "even", "ge5"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray runtime with 2 worker CPUs for the module (it is slow to start); its workers see the hold file."""
    ray_backend = pytest.importorskip("explorer.training.backends.ray")
    hold = tmp_path_factory.mktemp("ray") / "hold"
    os.environ[ray_backend.HOLD_ENV] = str(hold)  # inherited by the workers Ray starts below
    backend = ray_backend.make(num_cpus=2)
    yield backend, hold
    import ray
    ray.shutdown()
    os.environ.pop(ray_backend.HOLD_ENV, None)


def _report(dataset, **kwargs) -> dict:
    d = run_sweep(dataset, TASKS, seeds=2, config=TINY, affinity=False, **kwargs).to_dict()
    d.pop("seconds")
    d.pop("phase_seconds", None)
    return d


@pytest.fixture(scope="module")
def local_report(digits):
    return _report(digits)


def test_ray_report_is_the_local_report(cluster, digits, local_report):
    events = []
    assert _report(digits, backend="ray", progress=events.append) == local_report
    assert any("2 workers, 2 CPUs, 0 GPUs" in e.message for e in events)  # the cluster's size is shown
    assert events[-1].done == pytest.approx(events[-1].total)


def test_progress_counts_slots_while_chunks_run(cluster, digits):
    """Events in slot units (3 singles + 3 pairs, 2 seeds = 12 slots; 2 chunks of 6): the bar moves while
    a chunk trains (each worker's first step is always reported: 1 of its 5 steps = 1.2 of its 6 slots),
    never backwards, and ends at 12 of 12."""
    backend, _ = cluster
    combos = [("digit",), ("even",), ("ge5",), ("digit", "even"), ("digit", "ge5"), ("even", "ge5")]
    events = []
    runs = backend.train_combinations(digits, combos, TINY, [0, 1], progress=events.append)
    assert len(runs) == 12
    assert {e.total for e in events} == {12} and {e.phase for e in events} == {"train"}
    done = [e.done for e in events]
    assert done == sorted(done) and done[0] == 0 and done[-1] == pytest.approx(12)
    within_chunk = [d for d in done if abs(d / 6 - round(d / 6)) > 1e-6]
    assert within_chunk, f"the bar only moved per chunk: {done}"
    assert within_chunk[0] == pytest.approx(1.2) or within_chunk[0] == pytest.approx(7.2)
    assert events[-1].message == "12/12 slots on 2 workers, 2 CPUs, 0 GPUs"
    assert all(e.message.startswith(f"{int(e.done + 1e-9)}/12 slots on ") for e in events)


def test_killed_worker_is_retried_to_the_same_report(cluster, digits, local_report):
    _, hold = cluster
    hold.touch()  # arm: the first chunk writes its pid and waits
    pid_file = hold.with_name(hold.name + ".pid")
    killed = []

    def kill_it():
        for _ in range(600):
            if pid_file.exists() and pid_file.read_text():
                pid = int(pid_file.read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_it)
    killer.start()
    try:
        report = _report(digits, backend="ray")
    finally:
        killer.join()
        hold.unlink()
    assert killed and killed[0] != os.getpid()
    assert report == local_report


def test_bad_data_chunk_fails_fast_with_its_reason(cluster, digits):
    backend, _ = cluster
    config = TINY.resolve(digits.modality)
    only_digit = prepare(digits, ["digit"], config)  # the data the chunk gets lacks a task it must train
    with pytest.raises(ExplorerError, match="not in the prepared data") as info:
        backend.train_combinations(digits, [("digit", "even")], config, [0, 1], prepared=only_digit)
    assert "lost" not in str(info.value)  # its own error, not a worker lost and retried


def test_address_that_does_not_answer_is_one_line(tmp_path, capsys):
    # port 9 (discard) has no listener here: the check refuses before Ray, the data or training start
    code = main(["sweep", "--dataset", "digits", "--tasks", "even,ge5", "--seeds", "1", "--epochs", "1",
                 "--backend", "ray", "--address", "127.0.0.1:9", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "error: no Ray cluster at 127.0.0.1:9: start one with `ray start --head` or drop --address"
    assert not (tmp_path / "r.json").exists()


def test_cli_with_an_address_that_does_not_answer_exits_2(tmp_path):
    """The real command in its own process: nothing listens on 127.0.0.1:1, so it exits 2 with one line,
    well inside the subprocess timeout (the 30 s bound; a hang fails the test by timing out)."""
    out = tmp_path / "r.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, EXPLORER_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "explorer", "sweep", "--dataset", "digits", "--tasks", "even,ge5",
                           "--seeds", "1", "--epochs", "1", "--backend", "ray", "--address", "127.0.0.1:1",
                           "--out", str(out)], capture_output=True, text=True, timeout=30, cwd=root, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("error: no Ray cluster at 127.0.0.1:1: start one with `ray start --head` or "
                                   "drop --address")
    assert proc.stdout == "" and not out.exists() and not (tmp_path / "home").exists()


def test_address_with_the_local_backend_is_refused():
    with pytest.raises(ExplorerError, match="add --backend ray or drop --address"):
        check_backend("local", "127.0.0.1:6379")


def test_local_sweep_never_imports_ray():
    code = ("import sys; import explorer.cli, explorer.relatedness.sweep, explorer.training.backends as b; "
            "b.get_backend('local'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "False", out.stderr


def test_slots_become_blocks_the_batched_trainer_takes():
    a, b, ab = ("a",), ("b",), ("a", "b")
    assert rectangles([(a, 0), (ab, 0), (a, 1), (ab, 1), (b, 2)]) == [([a, ab], [0, 1]), ([b], [2])]



def test_chunks_cover_every_slot_once_and_balance_the_workers():
    """Pure arithmetic, no cluster: over a grid of combination, seed and worker counts, every slot is in
    exactly one chunk, each chunk is a block the batched trainer takes, no worker gets two, and the largest
    chunk (what the sweep waits for) is near the even share."""
    for n_combos, n_seeds, workers in itertools.product(range(1, 17), range(1, 9), range(1, 25)):
        combos, seeds = [(f"c{i}",) for i in range(n_combos)], list(range(100, 100 + n_seeds))
        blocks = chunks(combos, seeds, workers)
        case = (n_combos, n_seeds, workers)
        slots = [(c, s) for cs, ss in blocks for c in cs for s in ss]  # a block is its combinations x its seeds
        assert sorted(slots) == sorted(itertools.product(combos, seeds)), case
        assert len(blocks) <= workers, case  # one round: no worker waits for a second chunk
        sizes = [len(cs) * len(ss) for cs, ss in blocks]
        k = min(workers, n_combos * n_seeds)
        share = math.ceil(n_combos * n_seeds / k)
        assert max(sizes) < share + min(n_combos, n_seeds), (case, sizes)
        if n_seeds % k == 0 or k % n_seeds == 0:
            assert max(sizes) - min(sizes) <= 1, (case, sizes)


def test_chunks_of_the_readme_sweep_fit_one_round():
    """8 tasks to triples (92 combinations), 5 seeds: 8 workers got 10 chunks of 46 (two rounds, 92 slots on
    the busiest worker), 4 workers 2 + 1 + 1 + 1 seeds (184 slots on one)."""
    combos = [(f"c{i}",) for i in range(92)]
    eight = chunks(combos, list(range(5)), 8)
    assert len(eight) == 8 and max(len(c) * len(s) for c, s in eight) == 60
    four = chunks(combos, list(range(5)), 4)
    assert len(four) == 4 and max(len(c) * len(s) for c, s in four) == 115
    # where whole seeds already balance, the chunks stay whole seeds with all the combinations
    assert chunks(combos, list(range(5)), 5) == [(combos, [s]) for s in range(5)]

def test_gpu_check_without_cuda_says_so(capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--gpu-check", "--dataset", "digits", "--tasks", "2", "--epochs", "1"]) == 0
    assert "no CUDA device" in capsys.readouterr().out
