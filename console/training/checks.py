"""The declarative checks of lab steps: a TOML table compiled into a predicate over what the
session knows (events, LPAR state, files written, the trainee's answers).

One key of the table names the form, the others refine it (docs/LABS.md has the reference):

    { event = "dump_written", format = "elf" }         an event with these field values
    { stage = "checks", status = "failed" }            a workflow stage (status default done)
    { console_contains = "Dump successful" }           an Operating System Message
    { status = "not operating" }                       the LPAR status now
    { cpu_state = "stopped" }  /  { cpu_state = "stopped", cpu = 1 }    CPU states now
    { file_glob = "dumps/vmcore-*" }                   a file the lab wrote in the work dir
    { ran = "vmcore" }                                 a command the trainee ran
    { answer = { event = "hang", value = "cpu" }, attempts = 1 }   the trainee's `answer`
    { greater = {SELECTOR}, than = {SELECTOR}, times = 10 }        compare two event fields
    { all = [...] }  { any = [...] }  { not = {...} }

A SELECTOR is `{ event = KIND, FIELD = VALUE ..., value = FIELD }`: the last event of KIND
with those field values, and the field whose value counts. `FIELD_contains = TEXT` matches a
part of a text field. Field names are checked against machine/events.py when a lab loads.

`event`, `stage`, `console_contains` and `ran` look at what happened during the current step
(its setup included), so that an earlier step cannot pass them; `since = "lab"` widens them
to the whole lab. `answer` and `greater` pick the most recent matching event of the whole lab.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from machine import events as machine_events

CONTAINS = "_contains"


class CheckError(ValueError):
    """A check table that cannot be compiled; `key` is the key at fault, to find its line."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def _event_fields() -> dict[str, frozenset[str]]:
    """Every event kind of machine/events.py with its field names."""
    kinds: dict[str, frozenset[str]] = {}
    pending = list(machine_events.Event.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        kinds[cls.kind] = frozenset(f.name for f in dataclasses.fields(cls))
    return kinds


EVENT_FIELDS = _event_fields()


@dataclass(frozen=True)
class CheckContext:
    """What a check may look at: the lab's events so far, the LPAR now, the files the lab
    wrote, this step's answers, and the commands that succeeded."""

    events: Sequence[machine_events.Event]
    lpar_status: str = "not activated"
    cpu_states: Mapping[int, str] = field(default_factory=dict)
    new_files: Callable[[str], list[str]] = lambda pattern: []
    answers: Sequence[str] = ()
    commands: Sequence[str] = ()
    # Where the current step began (its setup included) in `events` and `commands`.
    step_event: int = 0
    step_command: int = 0

    def events_since(self, whole_lab: bool) -> Sequence[machine_events.Event]:
        return self.events if whole_lab else self.events[self.step_event:]

    def commands_since(self, whole_lab: bool) -> Sequence[str]:
        return self.commands if whole_lab else self.commands[self.step_command:]


@dataclass(frozen=True)
class Verdict:
    """A check's result and one line saying what it found (or missed)."""

    ok: bool
    detail: str


class Check(ABC):
    """A compiled check."""

    @abstractmethod
    def evaluate(self, context: CheckContext) -> Verdict:
        """Whether the check passes now, and why."""


# --------------------------------------------------------------------------------------------
# Event selectors


def _matches(actual: Any, wanted: Any, contains: bool) -> bool:
    if contains:
        return isinstance(actual, str) and str(wanted) in actual
    if isinstance(wanted, bool) or isinstance(actual, bool):
        # TOML true must not match the integer 1 (e.g. cpu = true).
        return type(actual) is type(wanted) and actual == wanted
    return actual == wanted


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class EventSelector:
    """Events of one kind with given field values; `value` names the field that counts."""

    kind: str
    filters: tuple[tuple[str, Any, bool], ...]  # (field, wanted, substring match)
    value: str | None = None

    def matches(self, event: machine_events.Event) -> bool:
        return event.kind == self.kind and all(
            _matches(getattr(event, name, None), wanted, contains)
            for name, wanted, contains in self.filters)

    def last(self, events: Sequence[machine_events.Event]) -> machine_events.Event | None:
        """The most recent matching event."""
        for event in reversed(events):
            if self.matches(event):
                return event
        return None

    def pick(self, events: Sequence[machine_events.Event]) -> Any:
        """The `value` field of the most recent matching event (None if there is none)."""
        event = self.last(events)
        return None if event is None or self.value is None else getattr(event, self.value)

    def describe(self) -> str:
        parts = [f"{name}{' contains' if contains else ' ='} {_show(wanted)}"
                 for name, wanted, contains in self.filters]
        return f"{self.kind} event" + (f" with {', '.join(parts)}" if parts else "")


def compile_selector(table: Any, *, value: bool, default_filters: Mapping[str, Any] | None = None,
                     kind: str | None = None) -> EventSelector:
    """An EventSelector from `{event = KIND, FIELD = VALUE..., value = FIELD}`.

    `value` says whether a `value` key is required (selectors that pick a field) or refused.
    `kind` is given for the shorthand forms (`stage = ...`) that imply it."""
    if not isinstance(table, Mapping):
        raise CheckError(f"expected a table like {{ event = \"KIND\", ... }}, not {table!r}")
    items = dict(table)
    kind = kind or items.pop("event", None)
    if not isinstance(kind, str):
        raise CheckError("an event selector needs 'event = \"KIND\"'", "event")
    if kind not in EVENT_FIELDS:
        raise CheckError(f"unknown event kind '{kind}' (known: {', '.join(sorted(EVENT_FIELDS))})",
                         "event")
    fields = EVENT_FIELDS[kind]
    picked = items.pop("value", None)
    if value and picked is None:
        raise CheckError(f"the {kind} selector needs 'value = \"FIELD\"' (the field to use)",
                         "event")
    if not value and picked is not None:
        raise CheckError("'value' only belongs in a selector of greater, than or answer", "value")
    if picked is not None and picked not in fields:
        raise CheckError(f"{kind} events have no field '{picked}' (fields: "
                         f"{', '.join(sorted(fields))})", "value")
    filters = []
    for key, wanted in {**(default_filters or {}), **items}.items():
        name, contains = (key[:-len(CONTAINS)], True) if key.endswith(CONTAINS) else (key, False)
        if name not in fields:
            raise CheckError(f"unknown check key '{key}': {kind} events have the fields "
                             f"{', '.join(sorted(fields))}", key)
        if isinstance(wanted, (list, dict)):
            raise CheckError(f"'{key}' must be a single value", key)
        filters.append((name, wanted, contains))
    return EventSelector(kind, tuple(filters), picked)


# --------------------------------------------------------------------------------------------
# The forms


@dataclass(frozen=True)
class EventCheck(Check):
    """An event that happened (since the lab began)."""

    selector: EventSelector
    whole_lab: bool = False

    def evaluate(self, context: CheckContext) -> Verdict:
        event = self.selector.last(context.events_since(self.whole_lab))
        if event is None:
            return Verdict(False, f"no {self.selector.describe()} yet")
        return Verdict(True, f"{self.selector.describe()} at t={event.t / 1e6:.3f}ms")


@dataclass(frozen=True)
class ConsoleCheck(Check):
    """An Operating System Message containing a text (the operator's echoes do not count)."""

    text: str
    whole_lab: bool = False

    def evaluate(self, context: CheckContext) -> Verdict:
        for event in context.events_since(self.whole_lab):
            if (event.kind == "console" and getattr(event, "source", "os") != "operator"
                    and self.text in getattr(event, "text", "")):
                return Verdict(True, f"the console showed '{self.text}'")
        return Verdict(False, f"no console message with '{self.text}' yet")


@dataclass(frozen=True)
class StatusCheck(Check):
    """The LPAR status now (`not activated`, `not operating`, `operating`, `exceptions`)."""

    status: str

    def evaluate(self, context: CheckContext) -> Verdict:
        ok = context.lpar_status == self.status
        return Verdict(ok, f"the LPAR status is {context.lpar_status}"
                           + ("" if ok else f", not {self.status}"))


@dataclass(frozen=True)
class CpuStateCheck(Check):
    """One CPU, or every CPU, in a state now."""

    state: str
    cpu: int | None = None

    def evaluate(self, context: CheckContext) -> Verdict:
        states = context.cpu_states
        if self.cpu is not None:
            actual = states.get(self.cpu, "absent")
            return Verdict(actual == self.state, f"CPU {self.cpu} is {actual}")
        others = {cpu: state for cpu, state in states.items() if state != self.state}
        if states and not others:
            return Verdict(True, f"every CPU is {self.state}")
        if not states:
            return Verdict(False, "the LPAR has no CPUs (not activated)")
        listed = ", ".join(f"CPU {cpu} {state}" for cpu, state in sorted(others.items()))
        return Verdict(False, f"not every CPU is {self.state}: {listed}")


@dataclass(frozen=True)
class FileCheck(Check):
    """A file under the work directory, written or changed since the lab began."""

    pattern: str

    def evaluate(self, context: CheckContext) -> Verdict:
        found = context.new_files(self.pattern)
        if found:
            return Verdict(True, f"{found[0]} was written")
        return Verdict(False, f"no file matching {self.pattern} written yet")


@dataclass(frozen=True)
class RanCheck(Check):
    """A command (operator or lab) that succeeded and starts with these words."""

    words: str
    whole_lab: bool = False

    def evaluate(self, context: CheckContext) -> Verdict:
        wanted = self.words.lower().split()
        for command in context.commands_since(self.whole_lab):
            if command.lower().split()[:len(wanted)] == wanted:
                return Verdict(True, f"'{command}' ran")
        return Verdict(False, f"'{self.words}' has not been run yet")


def answer_matches(answer: str, truth: Any) -> bool:
    """Whether a trainee's answer says the truth: numbers as numbers ("2", "cpu 2", "0x2"),
    texts without regard to case and spacing (the truth may be followed by more words)."""
    text = " ".join(answer.lower().strip().rstrip(".").split())
    if isinstance(truth, bool):
        return text in (("yes", "true") if truth else ("no", "false"))
    if isinstance(truth, int):
        word = text.removeprefix("cpu").strip()
        try:
            return (int(word, 16) if word.startswith("0x") else int(word)) == truth
        except ValueError:
            return False
    expected = " ".join(str(truth).lower().split())
    return text == expected or text.startswith(expected + " ")


@dataclass(frozen=True)
class AnswerCheck(Check):
    """The trainee's `answer` equals what the selected event says, within `attempts` tries.

    The truth comes from the session's own events, so it is right for whatever the run did,
    and a blind guess has `attempts` chances only."""

    selector: EventSelector
    attempts: int = 2

    def truth(self, context: CheckContext) -> Any:
        return self.selector.pick(context.events)

    def attempts_left(self, context: CheckContext) -> int:
        return max(0, self.attempts - len(context.answers))

    def evaluate(self, context: CheckContext) -> Verdict:
        truth = self.truth(context)
        if truth is None:
            return Verdict(False, f"nothing to answer yet: no {self.selector.describe()}")
        for answer in context.answers[:self.attempts]:
            if answer_matches(answer, truth):
                return Verdict(True, f"'{answer}' is right")
        if not context.answers:
            return Verdict(False, "no answer yet (answer VALUE)")
        if self.attempts_left(context) == 0:
            return Verdict(False, f"no attempts left: the answer was {truth}")
        return Verdict(False, f"'{context.answers[-1]}' is not right "
                              f"({self.attempts_left(context)} attempt(s) left)")


@dataclass(frozen=True)
class CompareCheck(Check):
    """One event field greater than another (times a factor): e.g. a full dump's bytes
    against a kdump's."""

    greater: EventSelector
    than: EventSelector
    times: float = 1

    def evaluate(self, context: CheckContext) -> Verdict:
        left, right = self.greater.pick(context.events), self.than.pick(context.events)
        for side, value in ((self.greater, left), (self.than, right)):
            if value is None:
                return Verdict(False, f"no {side.describe()} yet")
        factor = f"{self.times:g} times " if self.times != 1 else ""
        ok = left > right * self.times
        return Verdict(ok, f"{self.greater.value} {left} is {'' if ok else 'not '}more than "
                           f"{factor}{right}")


@dataclass(frozen=True)
class AllCheck(Check):
    """Every part passes."""

    parts: tuple[Check, ...]

    def evaluate(self, context: CheckContext) -> Verdict:
        details = []
        for part in self.parts:
            verdict = part.evaluate(context)
            if not verdict.ok:
                return verdict
            details.append(verdict.detail)
        return Verdict(True, "; ".join(details))


@dataclass(frozen=True)
class AnyCheck(Check):
    """At least one part passes."""

    parts: tuple[Check, ...]

    def evaluate(self, context: CheckContext) -> Verdict:
        misses = []
        for part in self.parts:
            verdict = part.evaluate(context)
            if verdict.ok:
                return verdict
            misses.append(verdict.detail)
        return Verdict(False, " or ".join(misses))


@dataclass(frozen=True)
class NotCheck(Check):
    """The part does not pass."""

    part: Check

    def evaluate(self, context: CheckContext) -> Verdict:
        verdict = self.part.evaluate(context)
        return Verdict(not verdict.ok, ("not: " if verdict.ok else "") + verdict.detail)


# --------------------------------------------------------------------------------------------
# Compiling


def _only(table: Mapping[str, Any], form: str, allowed: Sequence[str] = ()) -> None:
    for key in table:
        if key != form and key not in allowed:
            extra = f" (with {form}: {', '.join(allowed)})" if allowed else ""
            raise CheckError(f"unknown check key '{key}'{extra}", key)


def _text(table: Mapping[str, Any], key: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not value:
        raise CheckError(f"'{key}' must be a non-empty string", key)
    return value


# The largest number a check takes (attempts, a comparison factor): finite and sane.
MAX_CHECK_NUMBER = 1_000_000


def _number(table: Mapping[str, Any], key: str, default: float, minimum: float) -> Any:
    value = table.get(key, default)
    # `not minimum <= value <= MAX` is also true for nan; inf is above the maximum.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not minimum <= value <= MAX_CHECK_NUMBER:
        raise CheckError(f"'{key}' must be a number from {minimum:g} to "
                         f"{MAX_CHECK_NUMBER:,}", key)
    return value


def _parts(table: Mapping[str, Any], form: str) -> tuple[Check, ...]:
    _only(table, form)
    parts = table[form]
    if not isinstance(parts, list) or not parts:
        raise CheckError(f"'{form}' must be a non-empty list of checks", form)
    return tuple(compile_check(part) for part in parts)


def _stage(table: Mapping[str, Any]) -> Check:
    defaults = {"stage": _text(table, "stage"), "status": table.get("status", "done")}
    rest = {key: value for key, value in table.items() if key not in ("stage", "status")}
    return EventCheck(compile_selector(rest, value=False, default_filters=defaults,
                                       kind="stage"))


def _cpu_state(table: Mapping[str, Any]) -> Check:
    _only(table, "cpu_state", ("cpu",))
    cpu = table.get("cpu")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0):
        raise CheckError("'cpu' must be a CPU number", "cpu")
    return CpuStateCheck(_text(table, "cpu_state"), cpu)


def _file_glob(table: Mapping[str, Any]) -> Check:
    _only(table, "file_glob")
    pattern = _text(table, "file_glob")
    if PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
        raise CheckError("'file_glob' is relative to the work directory (no / or ..)",
                         "file_glob")
    return FileCheck(pattern)


def _answer(table: Mapping[str, Any]) -> Check:
    _only(table, "answer", ("attempts",))
    attempts = _number(table, "attempts", 2, 1)
    if not isinstance(attempts, int):
        raise CheckError("'attempts' must be a whole number", "attempts")
    return AnswerCheck(compile_selector(table["answer"], value=True), attempts)


def _compare(table: Mapping[str, Any]) -> Check:
    _only(table, "greater", ("than", "times"))
    if "than" not in table:
        raise CheckError("'greater' needs 'than' (the selector to compare with)", "greater")
    return CompareCheck(compile_selector(table["greater"], value=True),
                        compile_selector(table["than"], value=True),
                        _number(table, "times", 1, 0))


def _single(form: str, build: Callable[[str], Check]) -> Callable[[Mapping[str, Any]], Check]:
    """The compiler of a form that is one text and nothing else."""
    def compile_form(table: Mapping[str, Any]) -> Check:
        _only(table, form)
        return build(_text(table, form))
    return compile_form


def _not(table: Mapping[str, Any]) -> Check:
    _only(table, "not")
    return NotCheck(compile_check(table["not"]))


_FORMS: dict[str, Callable[[Mapping[str, Any]], Check]] = {
    "all": lambda table: AllCheck(_parts(table, "all")),
    "any": lambda table: AnyCheck(_parts(table, "any")),
    "not": _not,
    "event": lambda table: EventCheck(compile_selector(table, value=False)),
    "stage": _stage,
    "console_contains": _single("console_contains", ConsoleCheck),
    "status": _single("status", StatusCheck),
    "cpu_state": _cpu_state,
    "file_glob": _file_glob,
    "ran": _single("ran", RanCheck),
    "answer": _answer,
    "greater": _compare,
}
FORMS = tuple(_FORMS)


def _since(table: Mapping[str, Any]) -> Check:
    """A check with `since = "step"|"lab"`: how far back events and commands count."""
    since = table["since"]
    if since not in ("step", "lab"):
        raise CheckError("'since' is \"step\" (the default) or \"lab\"", "since")
    check = compile_check({key: value for key, value in table.items() if key != "since"})
    if not isinstance(check, (EventCheck, ConsoleCheck, RanCheck)):
        raise CheckError("'since' belongs to event, stage, console_contains and ran checks",
                         "since")
    return dataclasses.replace(check, whole_lab=since == "lab")


def compile_check(table: Any) -> Check:
    """A Check from its TOML table; CheckError (with the key at fault) if it is not one."""
    if not isinstance(table, Mapping) or not table:
        raise CheckError(f"a check is a table with one of: {', '.join(FORMS)}")
    if "since" in table:
        return _since(table)
    # `stage` and `event` take field filters, among them `status`: they decide first.
    for form in ("stage", "event"):
        if form in table:
            return _FORMS[form](table)
    forms = [key for key in table if key in _FORMS]
    if not forms:
        key = next(iter(table))
        raise CheckError(f"unknown check key '{key}' (a check has one of: {', '.join(FORMS)})",
                         key)
    if len(forms) > 1:
        raise CheckError(f"a check has one form, not both '{forms[0]}' and '{forms[1]}' "
                         "(combine checks with all = [...])", forms[1])
    return _FORMS[forms[0]](table)
