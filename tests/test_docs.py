"""The documentation: the Sphinx site builds with warnings as errors, and every docstring
example runs and prints what it shows.

The site is the ``docs`` extra (``pip install -e ".[docs]"``, also in ``test``); the
examples are the ``Examples`` sections of the public functions and of the criterion
classes (whose docstrings the criterion factory derives from the functions').
"""
import doctest
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastloss
from fastloss._core.criterion import Criterion

ROOT = Path(__file__).resolve().parent.parent

# Modules whose docstrings hold examples: the loss families and the other public modules.
MODULES = ["fastloss." + name for name in (
    "classification", "regression", "margin", "embedding", "extras", "ctc", "triplet", "diagnose", "_core.warmup",
    "_core.threads", "_core.cuda")]

PUBLIC = {name: getattr(fastloss, name) for name in fastloss.__all__}
FUNCTIONS = {name: obj for name, obj in PUBLIC.items() if inspect.isfunction(obj)}
CRITERIA = {name: obj for name, obj in PUBLIC.items() if isinstance(obj, type) and issubclass(obj, Criterion)}


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for name in MODULES for t in finder.find(importlib.import_module(name)) if t.examples]
    return sorted(tests, key=lambda t: t.name)


DOCTESTS = _doctests()


def test_every_public_function_and_criterion_has_an_example():
    assert len(FUNCTIONS) >= 33 and len(CRITERIA) >= 28
    tested = {t.name.rsplit(".", 1)[-1] for t in DOCTESTS}
    missing = sorted(name for name, obj in {**FUNCTIONS, **CRITERIA}.items()
                     if "Examples\n" not in inspect.getdoc(obj) or name not in tested)
    assert not missing, f"no Examples section run as a doctest: {missing}"


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda t: t.name)
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    result = runner.run(test, out=report.append)
    assert result.attempted > 0
    assert result.failed == 0, "".join(report)


def test_sphinx_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    pytest.importorskip("furo")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(ROOT / "docs"), str(tmp_path / "html")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-6000:]
    for page in ("index", "api/classification", "api-contract", "benchmarks", "guide/gpu"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    # Every public function and criterion class has its entry in the API reference.
    reference = "".join(p.read_text() for p in (tmp_path / "html" / "api").glob("*.html"))
    for name in [*FUNCTIONS, *CRITERIA]:
        assert re.search(rf'id="fastloss\.(\w+\.)?{name}"', reference), name
