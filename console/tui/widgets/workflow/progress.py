"""Long work (SHA-256 of the segments, the dump write): a bar with MB/s and time left, and
after dumps a small chart comparing the kdump vmcore and the full dump."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label, ProgressBar, Static

from console.tui.widgets.workflow.model import DumpRecord, ProgressState

MiB = 1 << 20
CHART_WIDTH = 30


def progress_text(state: ProgressState) -> str:
    """`dump: 12.0 of 64.0 MiB, 85.3 MB/s, 0.6 s left`."""
    text = f"{state.what}: {state.done / MiB:.1f} of {state.total / MiB:.1f} MiB"
    if state.rate:
        text += f", {state.rate / 1e6:.1f} MB/s"
    if state.eta_s is not None:
        text += f", {state.eta_s:.2f} s left"
    return text + f" ({state.clock} time)"


class WorkProgress(Horizontal):
    """Shown only while long work reports progress."""

    HELP_TOPIC = "workflow"
    DEFAULT_CSS = """
    WorkProgress { height: 1; display: none; }
    WorkProgress.-active { display: block; }
    WorkProgress ProgressBar { width: 24; }
    WorkProgress Label { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=100, show_eta=False, show_percentage=True, id="work-bar")
        yield Label("", id="work-text")

    def show(self, state: ProgressState | None) -> None:
        self.set_class(state is not None, "-active")
        if state is None:
            return
        self.query_one(ProgressBar).update(total=max(state.total, 1), progress=state.done)
        self.query_one("#work-text", Label).update(progress_text(state))


def bar(value: float, largest: float, width: int = CHART_WIDTH) -> str:
    """A horizontal bar in eighths of a cell."""
    if largest <= 0:
        return ""
    eighths = round(8 * width * value / largest)
    return "█" * (eighths // 8) + " ▏▎▍▌▋▊▉"[eighths % 8].strip()


def chart(dumps: list[DumpRecord]) -> Content:
    """Size and time of the latest kdump vmcore and full dump of this console run."""
    latest: dict[str, DumpRecord] = {}
    for record in dumps:
        latest[record.label] = record
    if not latest:
        return Content.from_markup("[$foreground-muted]No dump written in this console run "
                                   "yet: the chart compares the kdump vmcore and the full "
                                   "dump once they exist.[/]")
    rows = sorted(latest.values(), key=lambda record: record.label, reverse=True)
    biggest = max(record.bytes for record in rows)
    timed = all(record.seconds is not None for record in rows)
    slowest = max(record.seconds or 0.0 for record in rows)
    lines = [Content.from_markup("[b]Dumps of this run[/] (size, and the time the machine "
                                 "took to write each file)" if timed else
                                 "[b]Dumps of this run[/] (size)")]
    for record in rows:
        style = "$success" if record.format == "elf" else "$warning"
        lines.append(Content.from_markup(
            f"$label size [{style}]$bar[/] $size MiB", label=f"{record.label:<13}",
            bar=bar(record.bytes, biggest).ljust(CHART_WIDTH), size=f"{record.bytes / MiB:8.1f}"))
        if not timed or record.seconds is None:
            continue
        lines.append(Content.from_markup(
            f"$label time [{style}]$bar[/] $secs s", label=" " * 13,
            bar=bar(record.seconds, slowest).ljust(CHART_WIDTH), secs=f"{record.seconds:8.3f}"))
    return Content("\n").join(lines)


class DumpChart(Static):
    """The comparison of the dumps written in this console run."""

    HELP_TOPIC = "workflow"
    DEFAULT_CSS = "DumpChart { height: auto; padding: 0 1; }"

    def show(self, dumps: list[DumpRecord]) -> None:
        self.update(chart(dumps))
