"""The dump viewer: a vmcore or s390 dump, side by side with the pre-dump snapshot."""
