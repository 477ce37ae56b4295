"""The emulated IBM Z LPAR: s390x CPUs on unicorn, storage, devices and HMC operations.

This package never imports Textual or the console package: everything it knows reaches the
outside world through events (machine.events) and snapshots (machine.lpar.Snapshot).
"""
