"""The operator side of DumpLab: the command language, sessions and the `dumplab` entry point.

Everything here except the (later) Textual app is plain Python: the command layer drives the
emulated LPAR in `machine` exactly as the TUI, labs, demos and replays will.
"""
