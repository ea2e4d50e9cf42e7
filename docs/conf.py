"""Sphinx configuration: ``sphinx-build -W --keep-going -b html docs OUT`` (the ``docs`` extra)."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the checkout's fastloss, as the tests import it

import fastloss  # noqa: E402

project = "fastloss"
author = "fastloss authors"
copyright = "fastloss authors"
release = version = fastloss.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # torch's autograd.Function methods carry torch's own cross-references
autodoc_typehints = "signature"  # the annotations' own names (fastloss._typing is imported for mypy only)
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Inputs", "params_style")]  # the criterion classes' call arguments

html_theme = "furo"
html_title = f"fastloss {release}"


# The guide includes the README's sections. Its links to files of the repository
# become links to the pages that hold them here.
README_LINKS = {"](docs/": "](/", "](bench/RESULTS.md)": "](/benchmarks.md)", "](CHANGELOG.md)": "](/changelog.md)"}


def _readme_links(app, relative_path, parent_docname, content):
    if relative_path.name == "README.md":
        for old, new in README_LINKS.items():
            content[0] = content[0].replace(old, new)


def setup(app):
    app.connect("include-read", _readme_links)
