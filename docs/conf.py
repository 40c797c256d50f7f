"""Sphinx configuration of the seqcpc site: MyST Markdown pages under docs/, built by `make docs` to
docs/_build/html. The references (command line, configuration), the benchmark results and the import rules are
generated from the repository when the site is built (docs/_ext/seqcpc_docs.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))  # Sphinx finds local extensions on the path

project = "seqcpc"
author = "the seqcpc authors"
copyright = "the seqcpc authors, MIT licence"

# sphinx_copybutton: a copy button on every code block, which copies the commands without the output
extensions = ["myst_parser", "sphinx_copybutton", "seqcpc_docs"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_ext"]

# `[text](page.md#a-heading)` links resolve to headings up to level 3; a link to a missing page or anchor is a
# warning, and `make docs` turns warnings into errors
myst_heading_anchors = 3
# text as written: "--episodic" in a help string stays two hyphens, not an en dash
smartquotes = False

# furo: maintained, readable without configuration, a sidebar of every page, light and dark modes, and wide tables
# scroll sideways inside their own box instead of widening the page
html_theme = "furo"
html_title = "seqcpc"
html_static_path = ["_static"]
html_css_files = ["seqcpc.css"]

