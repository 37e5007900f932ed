"""No application module is over 500 lines (docs/style.md), checked by scripts/check_module_size.py,
which `make lint` runs: it names a module past the limit and leaves migrations out."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_module_size.py"


def load_check():
    spec = importlib.util.spec_from_file_location("check_module_size", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_application_module_is_at_most_500_lines():
    assert load_check().oversized() == []


def test_a_module_over_the_limit_is_named_and_fails_the_check(tmp_path):
    (tmp_path / "serving" / "migrations").mkdir(parents=True)
    (tmp_path / "serving" / "long.py").write_text("x = 1\n" * 501)
    (tmp_path / "serving" / "fits.py").write_text("x = 1\n" * 500)
    (tmp_path / "serving" / "migrations" / "0001_initial.py").write_text("x = 1\n" * 900)
    assert load_check().oversized(tmp_path) == [("serving/long.py", 501)]
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout == "serving/long.py: 501 lines (the limit is 500): split it along its jobs\n"
