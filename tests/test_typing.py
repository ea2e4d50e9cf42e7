"""mypy over the package and over a user's script (tests/typing_user.py) that relies on
the overloads: ``grad=True`` gives ``(loss, grad)``, ``grad=False`` the loss. The
overloads and the criterion classes are in the package's stub, fastloss/__init__.pyi,
generated from the table of losses (``python -m fastloss._core.stubs``), which must be
current.

The configuration is pyproject.toml's ``[tool.mypy]``; mypy is in the ``test`` extra.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_package_ships_py_typed_and_its_stub():
    assert (ROOT / "fastloss" / "py.typed").is_file()
    assert (ROOT / "fastloss" / "__init__.pyi").is_file()
    assert 'fastloss = ["py.typed", "__init__.pyi"]' in (ROOT / "pyproject.toml").read_text()


def test_stub_is_current():
    """fastloss/__init__.pyi is what ``python -m fastloss._core.stubs`` writes from the table now."""
    done = subprocess.run([sys.executable, "-m", "fastloss._core.stubs", "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def test_stub_check_fails_on_a_stale_stub(tmp_path, monkeypatch, capsys):
    from fastloss._core import stubs

    stale = tmp_path / "__init__.pyi"
    stale.write_text((ROOT / "fastloss" / "__init__.pyi").read_text().replace("-> Loss: ...", "-> int: ...", 1))
    monkeypatch.setattr(stubs, "STUB", stale)
    assert stubs.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_mypy_passes_on_the_package_and_a_user_script(tmp_path):
    pytest.importorskip("mypy")
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                           "fastloss", "tests/typing_user.py"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Success" in done.stdout

