"""Hostile bundles: every case is refused with one ExplorerError line, or loads and predicts correctly.

Prints a summary line (tried / refused cleanly / accepted correctly / tracebacks / hangs) and fails
on any traceback, hang (a case over 20 s) or garbage accepted.
"""
import json
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from explorer.errors import ExplorerError
from explorer.store.bundle import load_bundle
from tests.test_bundle import TEXTS, _with, members  # noqa: F401 - members is the fixture of a valid bundle

HANG_S = 20.0


def _zip_bytes(path: Path, files: list[tuple[str, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which one case needs
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in files:
                z.writestr(name, data)
    return path


def _config_edit(members, tmp, fn):
    config = json.loads(members["config.json"])
    fn(config)
    return _with(members, tmp, {"config.json": json.dumps(config).encode()})


def _weights_edit(members, tmp, fn):
    state = load_safetensors(members["model.safetensors"])
    fn(state)
    return _with(members, tmp, {"model.safetensors": save_safetensors(state)})  # re-signed, as a forger would


def _flip(blob: bytes, at: float = 0.5) -> bytes:
    b = bytearray(blob)
    b[int(len(b) * at)] ^= 0x40
    return bytes(b)


def _v1(members, tmp):
    config = json.loads(members["config.json"])
    config["version"] = 1
    del config["sha256"]
    files = {k: v for k, v in members.items() if k in ("model.safetensors", "model.onnx", "README.md")}
    return _with(files, tmp, {"config.json": json.dumps(config).encode()})


# name -> (build(members, tmp_path) -> bundle path, "accept" or a text the refusal must contain)
CASES = {
    "valid": (lambda m, t: _with(m, t), "accept"),
    "valid plus a stray file": (lambda m, t: _with(m, t, {"notes/readme.txt": b"hello"}), "accept"),
    "version 1 without digests": (_v1, "accept"),
    "flipped byte in the weights": (lambda m, t: _with(m, t, {"model.safetensors": _flip(m["model.safetensors"])},
                                                       resign=False), "does not match its SHA-256"),
    "flipped byte in the ONNX graph": (lambda m, t: _with(m, t, {"model.onnx": _flip(m["model.onnx"])},
                                                          resign=False), "does not match its SHA-256"),
    "flipped byte in preprocess.json": (lambda m, t: _with(m, t, {"preprocess.json": _flip(m["preprocess.json"])},
                                                           resign=False), "does not match its SHA-256"),
    "config.json cut short": (lambda m, t: _with(m, t, {"config.json": m["config.json"][:-40]}), "not valid JSON"),
    "config.json not an object": (lambda m, t: _with(m, t, {"config.json": b"[1, 2, 3]"}), "JSON object"),
    "config.json 100k deep": (lambda m, t: _with(m, t, {"config.json": b"[" * 100_000 + b"]" * 100_000}),
                              "nested more than"),
    "config.json not UTF-8": (lambda m, t: _with(m, t, {"config.json": b"\xff\xfe{}"}), "not valid JSON"),
    "missing weights": (lambda m, t: _with(m, t, {"model.safetensors": None}), "missing model.safetensors"),
    "missing config": (lambda m, t: _with(m, t, {"config.json": None}), "missing config.json"),
    "missing a listed member": (lambda m, t: _with(m, t, {"preprocess.json": None}), "missing preprocess.json"),
    "zip bomb in the model card": (lambda m, t: _with(m, t, {"README.md": b"\0" * (3 << 20)}), "larger than"),
    "zip-slip name": (lambda m, t: _with(m, t, {"../../evil.py": b"import os"}), "outside its folder"),
    "absolute name": (lambda m, t: _with(m, t, {"/etc/cron.d/evil": b"* * * * * x"}), "outside its folder"),
    "duplicate config.json": (lambda m, t: _zip_bytes(t / "b.zip", list(m.items()) + [("config.json", b"{}")]),
                              "same name"),
    "thousands of members": (lambda m, t: _zip_bytes(t / "b.zip", list(m.items()) + [(f"f{i}", b"") for i in
                                                                                    range(2000)]), "holds 2006 files"),
    "not a zip": (lambda m, t: (t / "b.zip").write_bytes(b"\x00garbage" * 100) and t / "b.zip", "not a zip"),
    "truncated zip": (lambda m, t: (t / "b.zip").write_bytes(_with(m, t).read_bytes()[:3000]) and t / "b.zip",
                      "zip"),
    "version true": (lambda m, t: _config_edit(m, t, lambda c: c.update(version=True)), "'version' must be"),
    "version from the future": (lambda m, t: _config_edit(m, t, lambda c: c.update(version=7)), "newer explorer"),
    "dropout 5.0": (lambda m, t: _config_edit(m, t, lambda c: c["model"].update(dropout=5.0)), "'model.dropout'"),
    "zero std": (lambda m, t: _config_edit(m, t, lambda c: c["target_stats"].update(size=[1.0, 0.0])),
                 "std above 0"),
    "infinite mean": (lambda m, t: _config_edit(m, t, lambda c: c["target_stats"].update(size=[float("inf"), 1.0])),
                      "target_stats"),
    "a task kind nobody knows": (lambda m, t: _config_edit(m, t, lambda c: c["tasks"][0].update(kind="ranking")),
                                 "kind 'ranking'"),
    "a billion-wide hidden layer": (lambda m, t: _config_edit(m, t, lambda c: c["model"].update(hidden=10 ** 9)),
                                    "'model.hidden'"),
    "vocabulary larger than the weights": (lambda m, t: _config_edit(
        m, t, lambda c: (c["preprocess"]["vocab"].extend(["x", "y"]), c["model"]["input"].update(
            vocab_size=len(c["preprocess"]["vocab"])))), "shape"),
    "weights of the wrong shape": (lambda m, t: _weights_edit(
        m, t, lambda s: s.update({"heads.has_alpha.weight": torch.zeros(3, 16)})), "has shape [3, 16]"),
    "NaN weights": (lambda m, t: _weights_edit(m, t, lambda s: s["heads.size.bias"].fill_(float("nan"))), "NaN"),
    "integer weights": (lambda m, t: _weights_edit(
        m, t, lambda s: s.update({"heads.size.bias": torch.zeros(1, dtype=torch.int64)})), "not floating point"),
    "pickle instead of safetensors": (lambda m, t: _with(m, t, {"model.safetensors": b"\x80\x04\x95" + b"\0" * 64}),
                                      "pickle"),
    "safetensors header lying about its size": (lambda m, t: _with(
        m, t, {"model.safetensors": (10 ** 12).to_bytes(8, "little") + b"{}"}), "not a safetensors file"),
}


def _run(members, tmp_path: Path, build, expect: str) -> tuple[str, str]:
    """(outcome, detail): outcome is refused, accepted, traceback or garbage."""
    try:
        path = build(members, tmp_path)
        bundle = load_bundle(path)
        got = bundle.predict(TEXTS)
    except ExplorerError as e:
        message = str(e)
        if expect == "accept":
            return "traceback", f"refused a good bundle: {message}"
        if "\n" in message or expect not in message:
            return "traceback", f"unclear refusal: {message!r} (wanted {expect!r})"
        return "refused", message
    except Exception as e:  # noqa: BLE001 - any other exception is what this suite looks for
        return "traceback", f"{type(e).__name__}: {e}"
    if expect != "accept":
        return "garbage", "loaded a bundle that should have been refused"
    (tmp_path / "ref").mkdir()
    want = load_bundle(_with(members, tmp_path / "ref")).predict(TEXTS)  # the bundle as exported
    same = all(got[t]["labels"] == pytest.approx(want[t]["labels"]) if t == "size" else
               got[t]["labels"] == want[t]["labels"] for t in want)
    return ("accepted", "") if same else ("garbage", "predicts differently from the exported model")


def test_hostile_bundles(members, tmp_path, capsys):
    assert len(CASES) >= 15
    counts = {"refused": 0, "accepted": 0, "traceback": 0, "garbage": 0, "hang": 0}
    problems = []
    for i, (name, (build, expect)) in enumerate(CASES.items()):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        start = time.perf_counter()
        outcome, detail = _run(members, folder, build, expect)
        if time.perf_counter() - start > HANG_S:
            counts["hang"] += 1
            problems.append(f"{name}: took {time.perf_counter() - start:.0f} s")
        counts[outcome] += 1
        if outcome in ("traceback", "garbage"):
            problems.append(f"{name}: {detail}")
    line = (f"hostile bundles: tried {len(CASES)} / refused cleanly {counts['refused']} / accepted correctly "
            f"{counts['accepted']} / tracebacks {counts['traceback']} / hangs {counts['hang']}"
            f" / accepted garbage {counts['garbage']}")
    with capsys.disabled():
        print("\n" + line)
    assert not problems, "; ".join(problems)
