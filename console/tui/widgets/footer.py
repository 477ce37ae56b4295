"""The key bar at the bottom of the main screen."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class SteadyFooter(Footer):
    """Textual's Footer, rebuilt only when the keys it shows change.

    Textual rebuilds the whole footer (a widget per key, then layout and styles) whenever the
    screen's bindings may have changed, which is every focus move: switching views with a key
    cost a quarter of the UI thread's work for the key (issue 10's latency). Most moves leave
    the keys shown as they were; then there is nothing to rebuild."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple | None = None

    def _keys_shown(self, screen: Screen) -> tuple:
        return tuple((binding.key, binding.description, binding.action, enabled, tooltip,
                      binding.group)
                     for _node, binding, enabled, tooltip in screen.active_bindings.values()
                     if binding.show or binding.action == "command_palette")

    def bindings_changed(self, screen: Screen) -> None:
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            shown, before = self._keys_shown(screen), self._shown
            if shown == before:
                return
            self._shown = shown
            if before is not None and _without_enabled(shown) == _without_enabled(before):
                self._set_enabled(shown)  # the same keys, one dimmed or lit: no rebuild
                return
        super().bindings_changed(screen)

    def _set_enabled(self, shown: tuple) -> None:
        enabled = {(key, action): on for key, _d, action, on, _t, _g in shown}
        for footer_key in self.query(FooterKey):
            on = enabled.get((footer_key.key, footer_key.action))
            if on is not None:
                # FooterKey keeps its state in _disabled (read when it is clicked) and shows
                # it by the -disabled class; Textual sets both only when it builds the key.
                footer_key._disabled = not on
                footer_key.set_class(not on, "-disabled")


def _without_enabled(shown: tuple) -> tuple:
    return tuple((key, description, action, group)
                 for key, description, action, _on, _tooltip, group in shown)
