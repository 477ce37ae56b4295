"""The console: the Textual app, its screens and widgets, the stylesheet and help texts, the
lab screen and the demo director.

May import textual, rich, `console.training`, `console.control` and `machine`. Must not
import `console.classroom` or `console.cli`. The UI shows only what the machine's events and
frames say.
"""
