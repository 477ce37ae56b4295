"""The operator's side of DumpLab, in layers; each imports only the layers below it.

control (commands, session, runner, journal) < training (labs, demos) < tui (the Textual
console) < classroom (`dumplab serve`) < cli.py (the entry point, the only module that wires
them all). Everything rests on `machine`, which imports nothing from here. import-linter
checks the order (pyproject.toml, `lint-imports`).
"""
