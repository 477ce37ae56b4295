"""The console's widgets, grouped by domain: hmc (status, CPUs, tasks, hardware messages),
messages (Operating System Messages), workflow (timeline, progress, dump chart), inspect
(registers, storage, disassembly) and dump (the dump viewer)."""
