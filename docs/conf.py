"""Sphinx configuration of modprobe's documentation site.

Build it with ``pip install -e ".[docs]"`` and ``python -m sphinx -W -b html docs site``.
The markdown pages are read by myst-parser, the notebooks of ``analyses/`` by myst-nb
(without running them: the test suite runs them), the API pages by autodoc + napoleon
(Google docstrings) from the installed package.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the checkout's modprobe, also without an install

import modprobe

project = "modprobe"
author = "modprobe contributors"
release = version = modprobe.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",  # markdown (myst-parser) and notebooks
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "figures/*.csv", "**.ipynb_checkpoints"]

# Notebooks: copied from analyses/ at build time (sources must sit under docs/) and shown
# with the outputs they were saved with; never executed here.
nb_execution_mode = "off"
NOTEBOOKS = DOCS / "notebooks"
NOTEBOOKS.mkdir(exist_ok=True)
for notebook in sorted((ROOT / "analyses").glob("*.ipynb")):
    shutil.copyfile(notebook, NOTEBOOKS / notebook.name)

# API: one page per module, generated from the package (docs/api/generated, not kept).
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# The markdown pages link to source files and to each other as on GitHub; links that
# are not documents of this site stay plain links instead of failing the build.
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.xref_missing", "myst.header"]

html_theme = "alabaster"
html_title = f"modprobe {release}"


def _markdown_fences(app, what, name, obj, options, lines):
    """Docstrings show examples in markdown fences (readable in an editor and on GitHub);
    turn each into a ``code-block`` directive for the site."""
    converted, inside = [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```"):
            indent = line[: len(line) - len(line.lstrip())]
            if inside:
                converted.append("")
            else:
                converted += [f"{indent}.. code-block:: {stripped[3:].strip() or 'text'}", ""]
            inside = not inside
            continue
        converted.append(f"   {line}" if inside and line else line)
    lines[:] = converted


def setup(app):
    """Register the docstring hook."""
    app.connect("autodoc-process-docstring", _markdown_fences)
