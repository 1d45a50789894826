import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def run_store(tmp_path, monkeypatch):
    """Every test gets its own empty run store."""
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "runs"))
    return tmp_path / "runs"
