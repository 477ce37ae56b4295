"""Reading the TOML data files (labs, demos) with errors that name the file and the line.

tomllib reports the line of a syntax error but not of a value the program refuses (a missing
field, an unknown key, an unknown command), so `SourceLines` finds that line in the text: the
`[[steps]]` header of the N-th step, and a key or a quoted string inside it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine.profile import Profile, ProfileError
from machine.userfiles import read_user_text, shown_path

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_STEP_HEADER = re.compile(r"^\s*\[\[\s*steps\s*\]\]\s*(#.*)?$")


class DataFileError(ValueError):
    """A data file that cannot be used: `path:line: problem`."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{shown_path(path)}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class SourceLines:
    """The text of a data file, for finding the line a value came from."""

    path: Path
    lines: tuple[str, ...]

    def step_line(self, index: int) -> int:
        """The line of the `[[steps]]` header of step `index` (0-based); 1 if not found."""
        seen = -1
        for number, text in enumerate(self.lines, start=1):
            if _STEP_HEADER.match(text):
                seen += 1
                if seen == index:
                    return number
        return 1

    def step_span(self, index: int | None) -> tuple[int, int]:
        """First and last line (1-based) of step `index`, or of the part before the first
        step when index is None."""
        if index is None:
            first = 1
            end = self.step_line(0) - 1 if any(map(_STEP_HEADER.match, self.lines)) \
                else len(self.lines)
            return first, max(end, 1)
        first = self.step_line(index)
        following = self.step_line(index + 1)
        last = following - 1 if following > first else len(self.lines)
        return first, last

    def table_span(self, name: str) -> tuple[int, int]:
        """First and last line of a `[name]` table (its header to the next header)."""
        first = self.table_line(name)
        for number in range(first + 1, len(self.lines) + 1):
            if self.lines[number - 1].lstrip().startswith("["):
                return first, number - 1
        return first, len(self.lines)

    def key_line(self, key: str, index: int | None = None, table: str | None = None) -> int:
        """The line where `key = ...` is written inside step `index`, inside the `[table]`
        table, or else before the steps; also inside an inline table. The step's (or
        table's) first line if not found."""
        pattern = re.compile(rf"(^|[{{,\s])\"?{re.escape(key)}\"?\s*=")
        span = self.table_span(table) if table is not None else self.step_span(index)
        return self._find(pattern, span)

    def text_line(self, text: str, index: int | None = None) -> int:
        """The line inside step `index` that holds `text` (a command of a script)."""
        return self._find(re.compile(re.escape(text)), self.step_span(index))

    def table_line(self, name: str) -> int:
        """The line of a `[name]` table header; 1 if not found."""
        pattern = re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]")
        for number, line in enumerate(self.lines, start=1):
            if pattern.match(line):
                return number
        return 1

    def _find(self, pattern: re.Pattern[str], span: tuple[int, int]) -> int:
        first, last = span
        for number in range(first, last + 1):
            if number <= len(self.lines) and pattern.search(self.lines[number - 1]):
                return number
        return first

    def error(self, line: int, problem: str) -> DataFileError:
        return DataFileError(self.path, line, problem)


def load_toml(path: Path, kind: str = "lab") -> tuple[dict[str, Any], SourceLines]:
    """Read a TOML file; DataFileError with the line for unreadable or invalid TOML."""
    try:
        # A regular file of at most 1 MiB (machine/userfiles.py): never a device or a FIFO.
        text = read_user_text(path, kind)
    except OSError as error:
        raise DataFileError(path, 1, f"cannot read: {error.strerror or error}") from None
    source = SourceLines(path, tuple(text.splitlines()))
    try:
        return tomllib.loads(text), source
    except RecursionError:
        raise DataFileError(path, 1, "invalid TOML: nested too deeply") from None
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _TOML_POSITION.search(message)
        line = int(match.group(1)) if match else 1
        raise DataFileError(path, line, f"invalid TOML: {_TOML_POSITION.sub('', message)}") \
            from None


def expect_keys(table: Mapping[str, Any], *, required: Sequence[str], optional: Sequence[str],
                source: SourceLines, index: int | None, what: str,
                name: str | None = None) -> None:
    """Refuse a table (step `index`, the named `[name]` table, or the top level) with a
    missing or an unknown key, naming the line."""
    for key in table:
        if key not in required and key not in optional:
            known = ", ".join([*required, *optional])
            raise source.error(source.key_line(key, index, name),
                               f"{what}: unknown key '{key}' (known: {known})")
    for key in required:
        if key not in table:
            line = (source.step_line(index) if index is not None
                    else source.table_line(name) if name is not None else 1)
            raise source.error(line, f"{what}: missing '{key}'")


def expect_type(value: Any, kind: type | tuple[type, ...], *, key: str, source: SourceLines,
                index: int | None, what: str, name: str | None = None) -> Any:
    """`value` if it is of `kind` (bool is not an int here), else an error naming the line
    (in step `index`, in the `[name]` table, or at the top level)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise source.error(source.key_line(key, index, name),
                           f"{what}: '{key}' must be {_article(names)} {names}, "
                           f"not {type(value).__name__}")
    return value


def expect_strings(value: Any, *, key: str, source: SourceLines, index: int | None,
                   what: str) -> tuple[str, ...]:
    """A list of strings (a script, hints), else an error naming the line."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise source.error(source.key_line(key, index),
                           f"{what}: '{key}' must be a list of strings")
    return tuple(value)


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def profile_overrides(data: Mapping[str, Any], source: SourceLines) -> dict[str, Any]:
    """The `[profile]` table of a lab or demo: overrides of the default profile, checked
    now (a bad value names its line) so that a session with them always activates."""
    profile = data.get("profile", {})
    if not isinstance(profile, dict):
        raise source.error(source.key_line("profile"), "'profile' must be a table")
    try:
        Profile.builtin("default").replace(**profile)
    except ProfileError as error:
        message = str(error).removeprefix("override: ")
        key = next((key for key in profile if f"'{key}'" in message or f"{key} =" in message
                    or message.startswith(f"{key}:")), None)
        line = source.key_line(key, table="profile") if key else source.table_line("profile")
        raise source.error(line, f"profile: {message}") from None
    return dict(profile)
