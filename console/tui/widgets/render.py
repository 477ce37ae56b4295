"""Drawing at the frame rate without waste: a view that is redrawn 20 times a second must
not cost a layout pass when only its values changed (the machine thread shares the GIL with
the UI, so every millisecond the UI spends is taken from the guest)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


def _shape(content: Content) -> tuple[int, int]:
    lines = content.plain.split("\n")
    return len(lines), max(len(line) for line in lines)


def update_static(widget: Static, content: Content) -> None:
    """Show content in a Static: nothing if it is unchanged, no layout if its shape is."""
    key = (content.plain, tuple(content.spans))
    previous = getattr(widget, "_dumplab_drawn", None)
    if previous is not None and previous[0] == key:
        return
    same_shape = previous is not None and previous[1] == _shape(content)
    widget._dumplab_drawn = (key, _shape(content))  # type: ignore[attr-defined]
    widget.update(content, layout=not same_shape)
