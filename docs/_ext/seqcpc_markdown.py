"""Text from the code (comments, docstrings, help strings) made safe for a cell of a Markdown table.

Code spans (`...`) are kept as written; outside them the characters Markdown would read as markup are escaped,
so a comment such as `x * y` or `a|b` renders as it reads in the source.
"""
import re

CODE_SPAN = re.compile(r"(`[^`]*`)")
MARKUP = re.compile(r"([\\*_<>\[\]|#])")


def cell(text) -> str:
    """One line of plain text for a table cell: whitespace folded, markup escaped outside code spans."""
    parts = CODE_SPAN.split(" ".join(str(text).split()))
    return "".join(p.replace("|", r"\|") if p.startswith("`") else MARKUP.sub(r"\\\1", p) for p in parts)


def code(text) -> str:
    """`text` as an inline code span in a table cell (a pipe inside it is escaped for the table)."""
    return "`" + str(text).replace("|", r"\|") + "`"
