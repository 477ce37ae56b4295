"""`dumplab lab`: the list of labs, `--headless --solve` (CI proves every lab solvable) and
the headless text mode (a trainee types at a prompt, without the console).

Without --headless, `dumplab lab NAME` opens the console with the lab sidebar through the
`in_console` function the caller passes (cli.py: console/tui/screens/lab.py's run_lab, imported
when used, so that the text modes never import Textual).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from console.control.commands import CommandResult
from console.control.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from console.training.labs import Catalogue, Lab, LabRun, LabSetupError, lab_session, load_labs
from machine.events import Event

LAB_WORDS = ("hint", "check", "skip", "quit", "text")
PROMPT = "lab> "


class _Console:
    """Prints the Operating System Messages of a session as they arrive (unless muted)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.muted = True

    def event(self, event: Event) -> None:
        if self.muted or event.kind != "console" or getattr(event, "source", "os") != "os":
            return
        stamp = f"[{event.t / 1e9:12.6f}]"
        for line in str(getattr(event, "text", "")).rstrip("\n").splitlines() or [""]:
            self.out.write(f"{stamp} {line}\n")


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.strip().splitlines())


def _show_result(result: CommandResult, out: TextIO) -> None:
    out.write((result.message if result.ok else f"refused: {result.message}") + "\n")


# --------------------------------------------------------------------------------------------
# --solve


def solve(lab: Lab, workdir: Path, out: TextIO, *, verbose: bool = False) -> bool:
    """Run every step's setup, solve script and check; print each step's title and result
    (with `verbose`, the commands and Operating System Messages too). True only if every
    check passed."""
    with lab_session(lab, workdir) as session:
        console = _Console(out)
        console.muted = not verbose
        session.bus.subscribe(console.event)
        run = LabRun(lab, session, solving=True)
        out.write(f"Lab {lab.number:02d} {lab.name}: {lab.title}\n")
        try:
            while not run.finished:
                _solve_step(run, out, verbose)
        except LabSetupError as error:
            out.write(f"FAILED: {error}\n")
            while not run.finished:
                run.finish_step("failed")
        finally:
            run.close()
        score = run.score()
        out.write(score.line() + "\n")
        return score.passed == score.total


def _solve_step(run: LabRun, out: TextIO, verbose: bool) -> None:
    number, total, step = run.index + 1, len(run.lab.steps), run.step
    out.write(f"Step {number}/{total}: {step.title} ... " + ("\n" if verbose else ""))
    out.flush()
    run.start_step()
    for line in step.solve:
        result = run.execute(line)
        if verbose:
            out.write(f"> {line}\n")
            _show_result(result, out)
        if not result.ok:
            out.write(f"FAILED: solve '{line}': {result.message}\n")
            run.finish_step("failed")
            return
    verdict = run.check()
    prefix = "  => " if verbose else ""
    out.write(prefix + ("passed" if verdict.ok else f"FAILED: {verdict.detail}") + "\n")
    run.finish_step("passed" if verdict.ok else "failed")


# --------------------------------------------------------------------------------------------
# The text mode


class TextLab:
    """The headless text mode: the step text, a prompt, the trainee's lines."""

    def __init__(self, lab: Lab, workdir: Path, inp: TextIO, out: TextIO) -> None:
        self.lab = lab
        self.workdir = workdir
        self.inp = inp
        self.out = out
        self.console = _Console(out)
        self.handlers: dict[str, Callable[[LabRun], bool]] = {
            "hint": self._hint, "check": self._check, "skip": self._skip,
            "quit": lambda run: False, "text": self._text,
        }

    def play(self) -> bool:
        """Run the lab until it ends or the trainee quits; True if every step passed."""
        with lab_session(self.lab, self.workdir) as session:
            session.bus.subscribe(self.console.event)
            run = LabRun(self.lab, session)
            self.out.write(f"Lab {self.lab.number}: {self.lab.title}\n\n")
            if self.lab.intro:
                self.out.write(self.lab.intro.strip() + "\n\n")
            self.out.write(f"At the prompt, type operator commands (help lists them), the dump "
                           f"commands dumps, vmcore and rd, answer VALUE, or "
                           f"{', '.join(LAB_WORDS)}.\n")
            try:
                self._loop(run)
            except LabSetupError as error:
                self.out.write(f"The lab cannot go on: {error}\n")
            finally:
                run.close()
            score = run.score()
            self.out.write(f"\n{score.line()}\n")
            return score.passed == score.total

    def _loop(self, run: LabRun) -> None:
        self._begin(run)
        while not run.finished:
            self.out.write(PROMPT)
            self.out.flush()
            line = self.inp.readline()
            if not line:  # end of input: as quit
                self.out.write("\n")
                return
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word = line.split()[0].lower()
            if word in self.handlers and len(line.split()) == 1:
                if not self.handlers[word](run):
                    return
                continue
            self.console.muted = False
            _show_result(run.execute(line), self.out)
            self._after_command(run, word)

    def _begin(self, run: LabRun) -> None:
        """Run the setup of the current step (if any) and show its text."""
        if run.finished:
            return
        step = run.step
        self.out.write(f"\n== Step {run.index + 1}/{len(self.lab.steps)}: {step.title} ==\n")
        self.console.muted = step.hide_setup
        for entry in run.start_step():
            if not step.hide_setup:
                self.out.write(f"setup> {entry.text}\n")
                _show_result(entry.result, self.out)
        self.console.muted = False
        if step.hide_setup and step.setup:
            self.out.write("(The setup ran; its messages are not shown: this step is about "
                           "finding out what happened.)\n")
        self._text(run)

    def _text(self, run: LabRun) -> bool:
        self.out.write("\n" + run.step.text.strip() + "\n\n")
        return True

    def _hint(self, run: LabRun) -> bool:
        hint = run.hint()
        total = len(run.step.hints)
        self.out.write(f"Hint {run.hints_used}/{total}: {hint}\n" if hint is not None
                       else "No more hints for this step.\n")
        return True

    def _check(self, run: LabRun) -> bool:
        verdict = run.check()
        if verdict.ok:
            self._passed(run, verdict.detail)
        else:
            self.out.write(f"Not yet: {verdict.detail}\n\n{run.step.explanation.strip()}\n")
        return True

    def _skip(self, run: LabRun) -> bool:
        self.out.write(f"Step {run.index + 1} skipped.\n")
        run.finish_step("skipped")
        self._begin(run)
        return True

    def _after_command(self, run: LabRun, word: str) -> None:
        """Grade after every command: a passing check moves on; a wrong answer explains."""
        verdict = run.check()
        if verdict.ok:
            self._passed(run, verdict.detail)
        elif run.question_closed():
            self.out.write(f"That is not right, and no attempts are left: the answer was "
                           f"{run.truth()}.\n\n{run.step.explanation.strip()}\n")
            run.finish_step("failed")
            self._begin(run)
        elif word == "answer" and run.step.question is not None:
            self.out.write(f"{verdict.detail}\n\n{run.step.explanation.strip()}\n")

    def _passed(self, run: LabRun, detail: str) -> None:
        self.out.write(f"\nStep {run.index + 1} passed: {detail}\n")
        if run.step.debrief:
            self.out.write("\n" + run.step.debrief.strip() + "\n")
        run.finish_step("passed")
        self._begin(run)


# --------------------------------------------------------------------------------------------
# The command line


def add_lab_parser(subcommands: Any) -> argparse.ArgumentParser:
    """The `dumplab lab` subcommand."""
    parser = subcommands.add_parser(
        "lab", help="list the labs, or run one",
        description="Labs teach the dump workflow step by step and grade it (docs/LABS.md). "
                    "`dumplab lab list` lists them; `dumplab lab NAME --headless` runs one at "
                    "a text prompt; with --solve, it runs every step's solve script and check "
                    "(exit 0 only if every check passes).")
    parser.add_argument("name", metavar="list|NAME",
                        help="'list', or a lab by name, file name or number")
    parser.add_argument("--headless", action="store_true",
                        help="run in the terminal without the console (TUI)")
    parser.add_argument("--solve", action="store_true",
                        help="with --headless: run the solve scripts and the checks")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="where device and dump files go (default: ./dumplab-work, or a "
                             "temporary directory with --solve)")
    parser.add_argument("--verbose", action="store_true",
                        help="with --solve: print the Operating System Messages too")
    return parser


def list_labs(catalogue: Catalogue, out: TextIO, err: TextIO) -> int:
    """One lab a line: name, then title; broken lab files on stderr (exit 1)."""
    width = max((len(lab.name) for lab in catalogue.labs), default=0) + 2
    out.writelines(f"{lab.name:<{width}}{lab.title}\n" for lab in catalogue.labs)
    err.writelines(f"dumplab lab: {error}\n" for error in catalogue.errors)
    return EXIT_FAILED if catalogue.errors else EXIT_OK


LabInConsole = Callable[[Lab, Path], int]


def lab_command(args: argparse.Namespace, out: TextIO, err: TextIO, *,
                in_console: LabInConsole) -> int:
    """`dumplab lab list|NAME [--headless [--solve]] [--workdir DIR]`; without --headless the
    lab runs in the console through `in_console(lab, workdir)`, which the caller provides."""
    catalogue = load_labs()
    if args.name == "list":
        return list_labs(catalogue, out, err)
    lab = catalogue.find(args.name)
    if lab is None:
        err.writelines(f"dumplab lab: {error}\n" for error in catalogue.errors)
        known = ", ".join(lab.name for lab in catalogue.labs) or "none"
        err.write(f"dumplab lab: unknown lab '{args.name}' (known: {known})\n")
        return EXIT_USAGE
    if args.solve and not args.headless:
        err.write("dumplab lab: --solve needs --headless\n")
        return EXIT_USAGE
    if not args.headless:
        return in_console(lab, args.workdir or Path("dumplab-work"))
    if args.solve:
        if args.workdir is not None:
            return EXIT_OK if solve(lab, args.workdir, out, verbose=args.verbose) \
                else EXIT_FAILED
        with tempfile.TemporaryDirectory(prefix="dumplab-lab-") as temporary:
            return EXIT_OK if solve(lab, Path(temporary), out, verbose=args.verbose) \
                else EXIT_FAILED
    text_lab = TextLab(lab, args.workdir or Path("dumplab-work"), sys.stdin, out)
    return EXIT_OK if text_lab.play() else EXIT_FAILED
