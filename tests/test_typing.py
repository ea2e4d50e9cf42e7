"""mypy over the package and over a user's script (tests/typing_user.py) that relies on
the overloads: ``grad=True`` gives ``(loss, grad)``, ``grad=False`` the loss.

The configuration is pyproject.toml's ``[tool.mypy]``; mypy is in the ``test`` extra.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_package_ships_py_typed():
    assert (ROOT / "fastloss" / "py.typed").is_file()
    assert 'fastloss = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_mypy_passes_on_the_package_and_a_user_script(tmp_path):
    pytest.importorskip("mypy")
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                           "fastloss", "tests/typing_user.py"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Success" in done.stdout

