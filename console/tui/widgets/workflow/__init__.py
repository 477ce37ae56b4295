"""The dump workflow: the stage timeline, check values, progress of long work, dump chart."""
