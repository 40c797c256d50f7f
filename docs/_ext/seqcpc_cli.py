"""The command-line reference, written from the argument parser itself (seqcpc.cli.build_parser()).

argparse has no public way to list a parser's arguments, so this reads the attributes every argparse
version has had: parser._actions, and a subparsers action's choices (name -> parser) and _choices_actions
(the help of each subcommand). A subcommand's own subcommands are walked the same way.
"""
import argparse

from seqcpc_markdown import cell, code
from seqcpc.eval.report import markdown_table

COLUMNS = ["argument", "value", "default", "what it does"]


def subcommands(parser) -> dict:
    """Name -> (help, parser) of the parser's subcommands, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def arguments(parser) -> list:
    """The parser's own arguments (not the subcommand switch)."""
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


def type_text(tp) -> str:
    """int, float, ...; a checking function by the first line of its docstring, less any 'An argparse type: '."""
    if tp is None:
        return ""
    doc = (tp.__doc__ or "").strip().splitlines()
    if tp in (int, float, str) or not doc:
        return tp.__name__
    return doc[0].split(": ", 1)[-1].rstrip(".")


def value_text(action) -> str:
    if action.nargs == 0:
        return "a switch"
    # a positional argument's name is in the first column already
    parts = [code(action.metavar or action.dest.upper())] if action.option_strings else []
    if action.nargs in ("*", "+"):
        parts.append("any number" if action.nargs == "*" else "one or more")
    if action.choices:
        parts.append("one of " + ", ".join(code(c) for c in action.choices))
    elif type_text(action.type):
        parts.append(cell(type_text(action.type)))
    return ", ".join(parts)


def default_text(action) -> str:
    if action.required and action.nargs != "*":  # argparse marks a '*' positional required; it may be empty
        return "required"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS, []):
        return ""
    return code(action.default)


def argument_rows(parser) -> list:
    return [[", ".join(code(s) for s in a.option_strings) or code(a.metavar or a.dest), value_text(a),
             default_text(a), cell(a.help or "")] for a in arguments(parser)]


def command_reference(parser, command: str, summary: str = "") -> list:
    """The Markdown parts of one command, then of each of its subcommands (each a section of the page)."""
    parts = [f"## `{command}`"]
    if summary or parser.description:
        parts.append(cell(summary or parser.description))
    parts += ["```text\n" + parser.format_usage().strip() + "\n```", markdown_table(COLUMNS, argument_rows(parser))]
    for name, (help_text, sub) in subcommands(parser).items():
        parts += command_reference(sub, f"{command} {name}", help_text)
    return parts


def cli_reference(parser) -> str:
    """The whole reference as Markdown: the command, then every subcommand with every argument."""
    return "\n\n".join(command_reference(parser, parser.prog)) + "\n"
