"""Every ```python block of README.md runs as written.

Each block is saved as a script in a fresh temporary directory and run there in a new
process (as a user would run it: ``python example.py``, on the default backend), with this
source tree first on the path. A block passes when it exits with status 0; what it computes is checked
by the tests of each function, against torch.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastloss._core import backends as _backend

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _python_blocks():
    """``(first line number, source)`` of each ```python block of the README."""
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.M | re.S)]


BLOCKS = _python_blocks()

# What a block needs beyond the run-time dependencies, by what it contains.
NEEDS = {
    "import torch": lambda: _importable("torch"),
    "fastloss.dask": lambda: _importable("distributed"),
    'backend="cython"': _backend.cython_built,
}


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 5, [line for line, _ in BLOCKS]


@pytest.mark.parametrize("line, source", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_example_runs(line, source, tmp_path):
    for marker, available in NEEDS.items():
        if marker in source and not available():
            pytest.skip(f"the example needs what {marker!r} uses")
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "FASTLOSS_BACKEND"}  # the examples use the default
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"README.md line {line}:\n{source}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
