"""SIGNAL PROCESSOR orders: architected condition codes and status bits."""

from __future__ import annotations

import pytest
from conftest import boot_lpar

from machine.cpu import CpuState
from machine.status import CpuStatus

SENSE, EXTERNAL_CALL, EMERGENCY, START, STOP, RESTART = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
STOP_AND_STORE, INITIAL_RESET, CPU_RESET, SET_PREFIX = 0x09, 0x0B, 0x0C, 0x0D
STORE_AT_ADDRESS, SET_ARCHITECTURE, SENSE_RUNNING = 0x0E, 0x12, 0x15
STATUS_INVALID_ORDER, STATUS_STOPPED, STATUS_EXT_CALL_PENDING = 0x002, 0x040, 0x080
STATUS_INVALID_PARAMETER, STATUS_INCORRECT_STATE, STATUS_NOT_RUNNING = 0x100, 0x200, 0x400


@pytest.fixture
def lpar(tmp_path):
    b = boot_lpar(tmp_path, cpus=3)
    yield b.lpar
    b.lpar.close()


def signal(lpar, order, target, parameter=0, sender=0):
    return lpar.system._signal(lpar.cpus[sender], order, target, parameter)


def test_set_architecture_ignores_the_cpu_address(lpar):
    """The order acts on the configuration: no CPU at the address is not cc 3."""
    assert signal(lpar, SET_ARCHITECTURE, 0xFFFF, 1) == (0, 0)
    assert signal(lpar, SET_ARCHITECTURE, 7, 2) == (0, 0)
    assert signal(lpar, SET_ARCHITECTURE, 7, 0) == (1, STATUS_INVALID_PARAMETER)


def test_not_operational_and_invalid_order(lpar):
    assert signal(lpar, SENSE, 3) == (3, 0)
    assert signal(lpar, SENSE, 0xFFFF) == (3, 0)
    assert signal(lpar, 0x7F, 1) == (1, STATUS_INVALID_ORDER)


def test_sense_reports_stopped_and_pending_external_call(lpar):
    assert signal(lpar, SENSE, 1) == (0, 0)
    assert signal(lpar, STOP, 1) == (0, 0)
    assert lpar.cpus[1].state == CpuState.STOPPED
    assert signal(lpar, SENSE, 1) == (1, STATUS_STOPPED)
    assert signal(lpar, EXTERNAL_CALL, 2) == (0, 0)
    assert signal(lpar, EXTERNAL_CALL, 2) == (1, STATUS_EXT_CALL_PENDING)
    assert signal(lpar, SENSE, 2) == (1, STATUS_EXT_CALL_PENDING)


def test_set_prefix_needs_a_stopped_target_and_storage(lpar):
    assert signal(lpar, SET_PREFIX, 1, 0x80000) == (1, STATUS_INCORRECT_STATE)
    signal(lpar, STOP, 1)
    assert signal(lpar, SET_PREFIX, 1, lpar.storage.size) == (1, STATUS_INVALID_PARAMETER)
    assert signal(lpar, SET_PREFIX, 1, 0x80000 | 0x1FFF) == (0, 0)  # low bits are ignored
    assert lpar.cpus[1].prefix == 0x80000


def test_store_status_at_address_and_stop_and_store(lpar):
    assert signal(lpar, STORE_AT_ADDRESS, 2, 0x90000) == (1, STATUS_INCORRECT_STATE)
    signal(lpar, STOP, 2)
    assert signal(lpar, STORE_AT_ADDRESS, 2, 0x90000 | 0x1FF) == (0, 0)
    saved = CpuStatus.unpack(lpar.read(0x90000, 512))
    assert saved.prefix == lpar.cpus[2].prefix and saved.gprs == tuple(lpar.snapshot().cpus[2].gprs)
    assert signal(lpar, STOP_AND_STORE, 1) == (0, 0)
    assert lpar.cpus[1].state == CpuState.STOPPED
    assert CpuStatus.unpack(lpar.read(0x1200, 512)).prefix == lpar.cpus[1].prefix


def test_resets_restart_and_architecture(lpar):
    assert signal(lpar, CPU_RESET, 0, sender=0) == (1, STATUS_INCORRECT_STATE)
    prefix = lpar.cpus[2].prefix
    assert signal(lpar, CPU_RESET, 2) == (0, 0)
    assert lpar.cpus[2].state == CpuState.STOPPED and lpar.cpus[2].prefix == prefix
    assert signal(lpar, INITIAL_RESET, 2) == (0, 0)
    assert lpar.cpus[2].prefix == 0 and lpar.cpus[2].psw == (0, 0)
    assert signal(lpar, SENSE_RUNNING, 2) == (1, STATUS_NOT_RUNNING)
    assert signal(lpar, RESTART, 1) == (0, 0)
    assert lpar.cpus[1].pending.restart and lpar.cpus[1].state == CpuState.OPERATING
    assert signal(lpar, SET_ARCHITECTURE, 1, 1) == (0, 0)
    assert signal(lpar, SET_ARCHITECTURE, 1, 0) == (1, STATUS_INVALID_PARAMETER)
    assert signal(lpar, EMERGENCY, 1) == (0, 0)
    assert lpar.cpus[1].pending.emergency_from == {0}
    assert signal(lpar, START, 2) == (0, 0)
    assert lpar.cpus[2].state == CpuState.OPERATING
