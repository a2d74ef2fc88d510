"""A step's command line, filled in so that no input or output value can ever become shell syntax.

Azure's commands are shell commands (``python a.py --x "${{inputs.x}}" && python b.py``), so a
step runs its command with ``bash -c``. Values are never spliced into that text: each
``${{inputs.x}}`` / ``${{outputs.y}}`` becomes a reference to an environment variable that the
runner sets for the step (``BATCHNB_IN_x``, ``BATCHNB_OUT_y``), written for the quoting around
it, which a small lexer tracks (POSIX quotes and escapes, plus bash's ``$'...'``, ``$(...)``,
``${...}``, backticks and ``$((...))``)::

    around the placeholder   the shell runs           the user sees (dry run, job show, logs)
    unquoted                 "${BATCHNB_IN_x}"        'it'"'"'s $(x)'
    "..."                    ${BATCHNB_IN_x}          "..."'it'"'"'s $(x)'"..."
    '...'                    '"${BATCHNB_IN_x}"'      '...''it'"'"'s $(x)''...'

A double-quoted expansion is never parsed again (no ``$(...)``, backticks, ``;``, globs or word
splitting), so the program receives exactly the text given. The shown form puts the real values
in, quoted so that pasting it into a shell gives the program the same arguments (inside
backticks or a ``"${...}"``, where quoting rules bend, it assigns the variable up front instead:
``BATCHNB_IN_x='...'; cmd "`tool "${BATCHNB_IN_x}"`"``).

Bash evaluates a value used in arithmetic as an expression (``a[$(cmd)]`` runs ``cmd``), so where
the template puts one there (``$((...))``, ``((...))``, the operands of ``[[ ... -gt ... ]]``) it
must be a whole number. Beyond that, what the command does with a value is its own business:
``eval``, ``bash -c`` or ``let`` re-read it as code, as they would any variable.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from .spec import COMMAND_REF, OPTIONAL_GROUP

# The lexer's contexts. WORD is the top level; a $(...) or `...` holds words again, with its
# own quotes (a " inside "$(cmd "x")" opens a new string rather than closing the outer one).
# ${...} is PARAM, or PARAM_DQ inside "...", where a ' is a plain character but a " quotes.
# ARITH is $((...)) or a ((...)) command; TEST is [[ ... ]], whose -eq, -lt, ... evaluate their operands.
WORD, SUBST, BACKTICK, DOUBLE, SINGLE, ANSI, ARITH = "word", "$()", "``", '"', "'", "$''", "$(())"
PARAM, PARAM_DQ, TEST = "${}", '"${}"', "[[]]"
_WORDS = (WORD, SUBST, BACKTICK, TEST)

_PREFIX = {"inputs": "BATCHNB_IN_", "outputs": "BATCHNB_OUT_"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9_]+")
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
# Characters that keep their meaning inside "...", so a value holding one cannot be shown there as is
# (``!`` only in an interactive shell, where a shown command is pasted).
_DOUBLE_SPECIAL = frozenset('$`"\\!')
# Where a # starts a comment, or (( and [[ a command: at the start of a word.
_WORD_BREAK = frozenset(" \t\n;&|()")
# An arithmetic comparison of [[ ]] right before or after a placeholder (its quotes aside).
_OPERATOR_BEFORE = re.compile(r"-(?:eq|ne|lt|le|gt|ge)\s+[\"']?\Z")
_OPERATOR_AFTER = re.compile(r"[\"']?\s+-(?:eq|ne|lt|le|gt|ge)\s")


@dataclass(frozen=True)
class Command:
    """A command with its values bound.

    Attributes:
        script: What ``bash -c`` runs: every value read from ``env``.
        shown: The same command with the real values in, quoted for copy-paste.
        env: The environment variables that hold the values.
    """

    script: str
    shown: str
    env: dict[str, str] = field(default_factory=dict)


def env_name(kind: str, name: str) -> str:
    """The environment variable that carries ``${{inputs.name}}`` or ``${{outputs.name}}`` to a step."""
    if _SAFE_NAME.fullmatch(name):
        return _PREFIX[kind] + name
    # Port names are validated to letters, digits and underscores; anything else still gets a valid name.
    return _PREFIX[kind] + "H" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _text(slot: dict[str, Any]) -> str | None:
    value = slot.get("path") if slot.get("path") is not None else slot.get("value")
    return None if value is None else str(value)


def render_command(command: str, inputs: dict[str, Any], outputs: dict[str, Any], where: str) -> Command:
    """Bind a command template's ``${{inputs.x}}`` / ``${{outputs.y}}``; drop ``$[[ ]]`` groups whose inputs are absent.

    Args:
        command: The component's command, as written.
        inputs: Each input's bound value: ``{"path": ...}`` or ``{"value": ...}`` (None when absent).
        outputs: Each output's ``{"path": ...}``.
        where: What to name in an error (``"pipeline.yml: jobs.train"``).

    Returns:
        The command to run, the command to show, and the environment that carries the values.

    Raises:
        ValidationError: A required input has no value, a value cannot be passed to a program (a NUL
            character), a value that bash would evaluate as arithmetic is not a whole number, or the
            command leaves a quote open.
    """
    ports = {"inputs": inputs, "outputs": outputs}

    def missing(text: str) -> bool:
        for m in COMMAND_REF.finditer(text):
            slot = ports[m.group(1)].get(m.group(2))
            if slot is None or _text(slot) is None:
                return True
        return False

    text = OPTIONAL_GROUP.sub(lambda m: "" if missing(m.group(1)) else m.group(1), command).strip()
    if missing(text):
        absent = [m.group(2) for m in COMMAND_REF.finditer(text) if missing(m.group(0))]
        raise ValidationError(f"{where}: the command needs input {absent[0]}, which has no value", field=where)
    script: list[str] = []
    shown: list[str] = []
    env: dict[str, str] = {}
    assigned: dict[str, str] = {}
    for piece in _lex(text, where):
        if isinstance(piece, str):
            script.append(piece)
            shown.append(piece)
            continue
        kind, name, context, plain, arithmetic = piece
        value = _text(ports[kind][name]) or ""
        _check_value(value, arithmetic, f"{where}: {kind}.{name}")
        var = env_name(kind, name)
        env[var] = value
        script.append(_reference(var, context))
        if plain:
            shown.append(_shown(value, context))
        else:
            # Inside `...` or "${...}" bash's quoting rules bend; show the variable, assigned up front.
            shown.append(_reference(var, context))
            assigned[var] = value
    prefix = "".join(f"{var}={shlex.quote(value)}; " for var, value in assigned.items())
    return Command("".join(script), prefix + "".join(shown), env)


def _check_value(value: str, arithmetic: bool, where: str) -> None:
    if "\0" in value:
        raise ValidationError(f"{where}: the value holds a NUL character, which no program can receive", field=where)
    try:
        os.fsencode(value)
    except UnicodeEncodeError:
        raise ValidationError(f"{where}: the value {value!r} is not valid text for a command", field=where) from None
    if arithmetic and not _WHOLE_NUMBER.fullmatch(value.strip()):
        raise ValidationError(
            f"{where}: the command puts it where bash evaluates it as arithmetic ($((...)), ((...)) or "
            f"[[ ... -eq ... ]]); only a whole number can go there, not {value!r}",
            field=where,
        )


def _reference(var: str, context: str) -> str:
    """``var`` expanded as exactly one word, whatever quotes surround it."""
    if context in (DOUBLE, PARAM_DQ, ARITH):
        return "${" + var + "}"
    if context == SINGLE:
        return "'\"${" + var + "}\"'"  # close the quote, expand in double quotes, reopen
    if context == ANSI:
        return "'\"${" + var + "}\"$'"
    return '"${' + var + '}"'


def _shown(value: str, context: str) -> str:
    """``value`` written where ``context`` puts it, so that a shell reads back exactly ``value``."""
    quoted = shlex.quote(value)
    if quoted == value or context == ARITH:
        return value
    if context == DOUBLE:
        return value if not _DOUBLE_SPECIAL & set(value) else f'"{quoted}"'
    if context == SINGLE:
        return value if "'" not in value else f"'{quoted}'"
    if context == ANSI:
        return value if not {"'", "\\"} & set(value) else f"'{quoted}$'"
    return quoted


def _lex(text: str, where: str) -> list[str | tuple[str, str, str, bool, bool]]:
    """Split a command into literal text and placeholders ``(kind, name, context, plain, arithmetic)``.

    The context is the innermost quoting or nesting around the placeholder; ``plain`` is False
    inside backticks or a ``${...}`` in double quotes, where a value cannot be shown in place;
    ``arithmetic`` is True where bash evaluates the value as an arithmetic expression. Placeholders
    are found wherever they are (as Azure fills them in textually), except in comments.
    """
    pieces: list[str | tuple[str, str, str, bool, bool]] = []
    stack: list[list[Any]] = [[WORD, 0]]  # [context, open ( or { inside it]
    start = i = 0
    while i < len(text):
        frame = stack[-1]
        context = frame[0]
        ref = COMMAND_REF.match(text, i)
        if ref:
            plain = not any(f[0] in (BACKTICK, PARAM_DQ) for f in stack)
            compared = any(f[0] == TEST for f in stack) and bool(
                _OPERATOR_BEFORE.search(text, 0, i) or _OPERATOR_AFTER.match(text, ref.end())
            )
            pieces += [text[start:i], (ref.group(1), ref.group(2), context, plain, context == ARITH or compared)]
            start = i = ref.end()
            continue
        c = text[i]
        step = 1
        word_start = i == 0 or text[i - 1] in _WORD_BREAK
        if c == "\\" and text.startswith('"', i + 1) and _in_quoted_backticks(stack):
            c, step = '"', 2  # "`cmd \"x\"`" runs cmd "x": the escaped quote quotes
        if context == SINGLE:
            if c == "'":
                stack.pop()
        elif c == "\\":
            escaped = COMMAND_REF.match(text, i + 1)
            if escaped:
                raise ValidationError(
                    f"{where}: the command has a backslash right before {escaped.group(0)}, which would "
                    "escape part of the value; remove it",
                    field=where,
                )
            step = 2
        elif context == ANSI:
            if c == "'":
                stack.pop()
        elif text.startswith("$((", i):
            stack.append([ARITH, 0])
            step = 3
        elif text.startswith("$(", i):
            stack.append([SUBST, 0])
            step = 2
        elif text.startswith("${", i):
            stack.append([PARAM_DQ if context in (DOUBLE, PARAM_DQ) else PARAM, 0])
            step = 2
        elif c == "`":
            if context == BACKTICK:
                stack.pop()
            else:
                stack.append([BACKTICK, 0])
        elif context == DOUBLE:
            if c == '"':
                stack.pop()
        elif context in _WORDS and word_start and text.startswith(("((", "[[ "), i):
            stack.append([ARITH if c == "(" else TEST, 0])
            step = 2
        elif context == TEST and word_start and text.startswith("]]", i):
            stack.pop()
            step = 2
        elif (c in "{}" and context in (PARAM, PARAM_DQ)) or (c in "()" and context in (SUBST, ARITH)):
            if c in "({":
                frame[1] += 1
            elif frame[1]:
                frame[1] -= 1
            elif context != ARITH:
                stack.pop()
            elif text.startswith("))", i):
                stack.pop()
                step = 2
        elif context == PARAM_DQ:
            if c == '"':
                stack.append([DOUBLE, 0])
        elif context == ARITH:
            pass
        elif c == "'":
            stack.append([SINGLE, 0])
        elif text.startswith("$'", i):
            stack.append([ANSI, 0])
            step = 2
        elif c == '"':
            stack.append([DOUBLE, 0])
        elif c == "#" and word_start:
            end = text.find("\n", i)
            step = (len(text) if end < 0 else end) - i
        i += step
    if stack[-1][0] in (SINGLE, DOUBLE, ANSI):
        raise ValidationError(f"{where}: the command leaves a {stack[-1][0][-1]} quote open", field=where)
    pieces.append(text[start:])
    return [p for p in pieces if p != ""]


def _in_quoted_backticks(stack: list[list[Any]]) -> bool:
    return any(stack[k][0] == BACKTICK and stack[k - 1][0] in (DOUBLE, PARAM_DQ) for k in range(1, len(stack)))


__all__ = ["Command", "env_name", "render_command"]
