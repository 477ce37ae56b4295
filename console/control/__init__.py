"""The operator command layer: the command language, the session, the runner (the machine's
thread), the journal and replay, the dump-file commands and the exit statuses.

May import `machine` and the standard library. Must not import textual, rich or any other
part of `console`: everything above (training, tui, classroom, cli) drives the LPAR through it.
"""
