import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Tiny test models run faster on one thread than with two threads contending
# (and the browser test runs a Streamlit server beside pytest).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def digits():
    """The built-in digits dataset, shared by the test modules (a module may define its own)."""
    from explorer.datasets import load_dataset
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def run_store(tmp_path, monkeypatch):
    """Every test gets its own empty run store."""
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "runs"))
    return tmp_path / "runs"


def pytest_terminal_summary(terminalreporter):
    """The hostile suites' one-line summaries (tests/hostile.py), shown in CI's output."""
    from tests.hostile import summary_lines
    for line in summary_lines():
        terminalreporter.write_line(line)
