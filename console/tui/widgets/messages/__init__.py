"""Operating System Messages: the message log with filter and hold, and the command line."""
