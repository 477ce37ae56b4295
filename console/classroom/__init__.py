"""The classroom: `dumplab serve`, the console in browsers (textual-serve), one console
process and work directory per connection.

May import every layer below (`console.tui` for what a served console needs to know,
`console.control`, `machine`). Must not import `console.cli`: the browser side runs the
console in its own process through the `dumplab` command.
"""
