"""Inspection: registers with the PSW decoded, the storage map and hex view, disassembly."""
