"""Long work (SHA-256 of the segments, the dump write): a bar with MB/s and time left, and
after dumps a small chart comparing the kdump vmcore and the full dump."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label, ProgressBar, Static

from console.tui.widgets.workflow.model import DumpRecord, ProgressState, SegmentLine, StageRecord

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


STAGE_BAR_WIDTH = 12
DIGEST_SHOWN = 16  # hex digits of a digest on a progress line (the checks list has them all)


def meter(done: int, total: int, width: int = STAGE_BAR_WIDTH) -> str:
    """`[█████▌      ]`: a bar of fixed width, readable without colour."""
    return "[" + bar(done, total, width).ljust(width) + "]" if total > 0 else "[" + " " * width + "]"


def segment_lines(line: SegmentLine) -> list[Content]:
    """`▶ segment 0 kdump kernel [███   ] 16.0/48.0 KiB`, and once its check came the
    expected (kexec's) and computed (the host's) digests."""
    mark, style = ("▶", "bold $accent") if line.ok is None else \
        ("✔", "bold $success") if line.ok else ("✘", "bold reverse $error")
    lines = [Content.from_markup(
        f"  [{style}]$mark[/] segment $index $name $meter $done/$total KiB", mark=mark,
        index=str(line.index), name=line.name, meter=meter(line.done, line.total),
        done=f"{line.done / 1024:.1f}", total=f"{line.total / 1024:.1f}")]
    if line.ok is not None:
        lines.append(Content(f"      expected {line.expected[:DIGEST_SHOWN]}… "
                             f"computed {line.computed[:DIGEST_SHOWN]}…"))
    return lines


def swap_line(record: StageRecord) -> Content:
    """The swap's bar from `swap_progress` events, or its state when none came."""
    if record.swap is not None:
        done, total = record.swap
        return Content.from_markup("  exchanged $meter $done of $total MiB",
                                   meter=meter(done, total), done=f"{done / MiB:.1f}",
                                   total=f"{total / MiB:.1f}")
    if record.status == "pending":
        return Content.from_markup("  [$foreground-muted]exchanged: not begun[/]")
    return Content(f"  exchanged: {record.status} (no progress reported)")


def stage_progress(record: StageRecord | None) -> list[Content]:
    """The watchable detail of a stage: the purgatory's hashing per segment, the swap's bar
    (empty for stages that have none)."""
    if record is None:
        return []
    lines: list[Content] = []
    if record.segments:
        lines.append(Content.from_markup("[b]SHA-256 of the segments[/] (bytes hashed)"))
        for line in sorted(record.segments.values(), key=lambda line: line.index):
            lines += segment_lines(line)
    if record.name == "swap":
        lines += [Content.from_markup("[b]Swap[/] [0, crash_size) <-> crashkernel"),
                  swap_line(record)]
    return lines


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
