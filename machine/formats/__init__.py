"""Dump file formats written and read on the host: the ELF vmcore of kdump (elfcore, notes)
and the s390 dump format of the stand-alone dumper (s390dump), conversion between them
(convert) and what `dumplab inspect` reports (summary).

Layouts follow S390_FACTS.md §4.4 and §5/§6; docs/FIDELITY.md "Dump files" lists our choices.
"""

from machine.formats.common import AddressNotDumped, DumpFormatError, WriteResult
from machine.formats.convert import ConvertResult, convert, detect_format, open_dump
from machine.formats.elfcore import LoadSegment, Vmcore, read_vmcore, write_vmcore
from machine.formats.notes import (
    CpuNotes,
    Note,
    cpu_notes,
    cpus_from_notes,
    pack_note,
    parse_notes,
    prpsinfo_note,
    vmcore_notes,
    vmcoreinfo_note,
)
from machine.formats.s390dump import S390Dump, S390Header, read_s390_dump, write_s390_dump

__all__ = [
    "AddressNotDumped", "ConvertResult", "CpuNotes", "DumpFormatError", "LoadSegment", "Note",
    "S390Dump", "S390Header", "Vmcore", "WriteResult", "convert", "cpu_notes",
    "cpus_from_notes", "detect_format", "open_dump", "pack_note", "parse_notes",
    "prpsinfo_note", "read_s390_dump", "read_vmcore", "vmcore_notes", "vmcoreinfo_note",
    "write_s390_dump", "write_vmcore",
]
