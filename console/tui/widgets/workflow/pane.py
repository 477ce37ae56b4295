"""The Workflow tab: progress of long work, the stage list, the selected stage's detail and
the dump chart."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from console.tui.widgets.inspect.regions import Region
from console.tui.widgets.workflow.model import DumpProgress, DumpRecord, Timeline
from console.tui.widgets.workflow.progress import DumpChart, WorkProgress
from console.tui.widgets.workflow.timeline import StageDetail, StageList


class WorkflowPane(Vertical):
    """Everything the dump workflow shows; fed by the app with events and the storage map."""

    HELP_TOPIC = "workflow"

    def __init__(self, timeline: Timeline, progress: DumpProgress, dumps: list[DumpRecord],
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.timeline = timeline
        self.progress = progress
        self.dumps = dumps
        self.regions: list[Region] = []
        self.storage: int | None = None  # bytes of storage, once known: addresses beyond are none
        self.selected: str | None = None

    def compose(self) -> ComposeResult:
        yield WorkProgress(id="work-progress")
        with Horizontal(id="workflow-body"):
            yield StageList(id="stage-list")
            with Vertical(id="stage-side"):
                yield StageDetail(id="stage-detail")
                yield DumpChart(id="dump-chart")

    def on_mount(self) -> None:
        self.refresh_all()

    def refresh_all(self) -> None:
        """Redraw from the models (after events arrived)."""
        self.query_one(StageList).show(self.timeline)
        self.query_one(WorkProgress).show(self.progress.state)
        self.query_one(DumpChart).show(self.dumps)
        self._show_detail()

    def follow(self) -> None:
        """Highlight the stage that changed last (when the tab is shown)."""
        latest = self.timeline.latest()
        if latest is not None:
            self.selected = latest
            stage_list = self.query_one(StageList)
            stage_list.highlighted = list(self.timeline.stages).index(latest)
            self._show_detail()

    def set_regions(self, regions: list[Region], storage: int | None = None) -> None:
        if (regions, storage) != (self.regions, self.storage):
            self.regions, self.storage = regions, storage
            self._show_detail()

    @on(StageList.Selected)
    def _selected(self, event: StageList.Selected) -> None:
        self.selected = event.name
        self._show_detail()

    def _show_detail(self) -> None:
        name = self.selected or self.timeline.current
        record = self.timeline.stages.get(name) if name else None
        self.query_one(StageDetail).show(record, self.regions, self.storage)
