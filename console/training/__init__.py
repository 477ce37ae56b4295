"""Training content: labs, their checks and tools, demo scripts and their headless player,
and the loader of the lab and demo data files.

May import `console.control` and `machine`. Must not import textual, rich, `console.tui`,
`console.classroom` or `console.cli`: a console player is passed in by the caller (cli.py).
"""
