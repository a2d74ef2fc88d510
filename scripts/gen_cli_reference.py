#!/usr/bin/env python3
"""Generate ``docs/cli-reference.md`` from the ``batchnb`` command line itself.

It walks the argparse tree that :func:`batchnb.cli.build_parser` builds: the global options, every
group (with its aliases), every command, and each command's arguments with their value, default,
choices and help. The page is a pure function of that tree (no terminal width, no dates), so adding
a command and rerunning this script is all it takes; tests/test_docs.py fails when the committed page
is stale.

    python scripts/gen_cli_reference.py           # rewrite docs/cli-reference.md
    python scripts/gen_cli_reference.py --check   # exit 1 (and show the diff) if it is out of date
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli-reference.md"
REGENERATE = "python scripts/gen_cli_reference.py"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, list[str], str, argparse.ArgumentParser]]:
    """(name, aliases, help, parser) of each subcommand, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = []
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                aliases = [n for n, p in action.choices.items() if p is sub and n != choice.dest]
                found.append((choice.dest, aliases, choice.help or "", sub))
            return found
    return []


def _arguments(parser: argparse.ArgumentParser, skip: set[str]) -> list[argparse.Action]:
    """The parser's own arguments: no -h, no subcommand slot, none whose flags are in ``skip``."""
    return [
        a
        for a in parser._actions
        if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        and not (a.option_strings and set(a.option_strings) <= skip)
    ]


def _value(action: argparse.Action) -> str:
    """How the value is written after the flag (empty for a switch)."""
    if action.nargs == 0:
        return ""
    name = action.metavar if isinstance(action.metavar, str) else action.dest.upper().replace("-", "_")
    if action.nargs in ("+", "*"):
        return f"{name} [{name} ...]"
    if action.nargs == "?":
        return f"[{name}]"
    return name


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(actions: list[argparse.Action]) -> list[str]:
    rows = ["| Argument | Value | Default | Description |", "| --- | --- | --- | --- |"]
    for a in actions:
        flags = ", ".join(f"`{f}`" for f in a.option_strings) if a.option_strings else f"`{a.dest}` (positional)"
        shown_default = a.default not in (None, False, argparse.SUPPRESS) and a.nargs != 0
        default = f"`{a.default}`" if shown_default else ""
        notes = ["**required**" if a.required else "", a.help or ""]
        if a.choices:
            notes.append("one of " + ", ".join(f"`{c}`" for c in a.choices))
        value = f"`{_value(a)}`" if _value(a) else ""
        rows.append(f"| {flags} | {value} | {default} | {_cell('; '.join(n for n in notes if n))} |")
    return rows


def _exit_codes() -> list[str]:
    """The exit codes, read from the error classes of batchnb.errors (each carries its own)."""
    from batchnb import errors

    def tree(cls: type) -> list[type]:
        return [cls, *(c for sub in cls.__subclasses__() for c in tree(sub))]

    rows = ["| Exit code | Error | When |", "| --- | --- | --- |", "| `0` |  | success |"]
    for cls in tree(errors.BatchnbError):
        if cls.__module__ != errors.__name__:
            continue
        when = (cls.__doc__ or "").strip().splitlines()[0].rstrip(".")
        if cls is errors.BatchnbError:
            when = "an internal error (a bug of batchnb's: `ERROR: internal error: ...`; `--debug` shows the traceback)"
        rows.append(f"| `{cls.exit_code}` | `{cls.__name__}` | {_cell(when)} |")
    rows.append("| `6` |  | `batch-endpoint invoke --wait` or `--stream`: the job ended other than Completed |")
    rows.append("| `130` |  | interrupted (Ctrl-C) |")
    return rows


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading (lowercase; spaces become hyphens; no punctuation but - and _)."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def generate() -> str:
    """The whole reference page, as markdown."""
    from batchnb.cli import build_parser

    root = build_parser()
    global_args = _arguments(root, skip=set())
    global_flags = {f for a in global_args for f in a.option_strings}
    groups = _subcommands(root)

    out = [
        "# batchnb CLI reference",
        "",
        f"<!-- Generated from the CLI's argparse tree by `{REGENERATE}`; do not edit by hand. -->",
        "",
        f"{root.description} Every command below is `batchnb <group> <command> [arguments]`, as "
        "`az ml <group> <command>`. Any unambiguous prefix of a long flag works (`--endpoint` for "
        "`--endpoint-name`). A mistake prints one `ERROR:` line and exits non-zero.",
        "",
        "## Global arguments",
        "",
        "Accepted before or after the command.",
        "",
        *_table(global_args),
        "",
        "## Exit codes",
        "",
        "A user mistake prints exactly one `ERROR:` line on stderr (naming the file, field or value) and no "
        "traceback, and exits with the code of its error class:",
        "",
        *_exit_codes(),
        "",
        "## Groups",
        "",
    ]
    for name, aliases, help_text, _ in groups:
        alias = f" (alias {', '.join(f'`{a}`' for a in aliases)})" if aliases else ""
        out.append(f"- [`{name}`](#{anchor('batchnb ' + name)}){alias}: {help_text}")
    for name, aliases, help_text, group in groups:
        title = f"batchnb {name}"
        out += ["", f"## {title}", "", f"{help_text[:1].upper()}{help_text[1:]}."]
        if aliases:
            out += ["", "Alias: " + ", ".join(f"`batchnb {a}`" for a in aliases) + "."]
        commands = _subcommands(group)
        if not commands:
            own = _arguments(group, skip=global_flags)
            out += ["", f"Usage: `{title}`", *(["", *_table(own)] if own else [])]
            continue
        for command, _, command_help, parser in commands:
            own = _arguments(parser, skip=global_flags)
            usage = " ".join([f"{title} {command}", *(f"<{a.dest}>" for a in own if not a.option_strings)])
            out += ["", f"### {title} {command}", "", f"{command_help[:1].upper()}{command_help[1:]}."]
            out += ["", f"Usage: `{usage} [arguments]`" if own else f"Usage: `{usage}`"]
            if own:
                out += ["", *_table(own)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the page is out of date")
    check = parser.parse_args(argv).check
    text = generate()
    current = TARGET.read_text() if TARGET.exists() else ""
    if current == text:
        print(f"{TARGET.relative_to(ROOT)} is up to date")
        return 0
    if not check:
        TARGET.write_text(text)
        print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(current.splitlines(True), text.splitlines(True), "committed", "generated")
    )
    print(f"\n{TARGET.relative_to(ROOT)} is out of date: run `{REGENERATE}`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
