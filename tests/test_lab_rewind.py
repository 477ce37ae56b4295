"""A lab step's check judges the timeline as it stands after a rewind: events of the
abandoned future do not count, the ones published again on the way forward do, and a rewind
to before the step began lets the step see what is replayed (issue 13)."""

from __future__ import annotations

from pathlib import Path

from console.training.labs import LabRun, lab_session, load_lab

LAB = '''
title = "Rewind in a lab"

[profile]
cpus = 2
memory = "64M"
crashkernel = "32M"
kdump = true

[[steps]]
title = "Boot with kdump"
setup = ["activate", "load 0100"]
text = "Wait for kdump."
check = { event = "kexec", since = "lab" }
hints = ["wait-for event kexec"]
explanation = "Wait for kdump."
solve = ["wait-for event kexec timeout=30s"]

[[steps]]
title = "Take the kdump"
text = "PSW Restart."
check = { all = [{ stage = "swap" }, { event = "dump_written", format = "elf" }] }
hints = ["restart 0"]
explanation = "Stop all, restart."
solve = ["stop all", "restart 0", "wait-for event dump_written timeout=30s"]
'''


def _ok(run: LabRun, *lines: str) -> None:
    for line in lines:
        result = run.execute(line)
        assert result.ok, f"{line}: {result.message}"


def test_a_rewind_in_the_middle_of_a_lab_then_finishing_it(tmp_path: Path) -> None:
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "01-rewind.toml").write_text(LAB)
    lab = load_lab(tmp_path / "labs" / "01-rewind.toml")
    with lab_session(lab, tmp_path / "work") as session:
        run = LabRun(lab, session)
        run.start_step()
        _ok(run, *lab.steps[0].solve)
        assert run.check().ok
        run.finish_step("passed")
        run.start_step()
        _ok(run, "wait-for stage workload timeout=30s", *lab.steps[1].solve)
        assert run.check().ok
        # Back to the swap: the vmcore and the swap's end are the abandoned future.
        _ok(run, "rewind swap")
        verdict = run.check()
        assert not verdict.ok, verdict
        assert not [e for e in run.context().events if e.kind == "dump_written"]
        _ok(run, "wait-for event dump_written timeout=30s")
        assert run.check().ok
        assert len([e for e in run.context().events if e.kind == "dump_written"]) == 1
        # Back to before this step began (where step 1's kdump load ended): this step's events
        # are gone, and what the trainee does again counts for it.
        _ok(run, "rewind kexec-load")
        assert not run.check().ok
        assert [e.kind for e in run.context().events].count("kexec") == 1
        _ok(run, "wait-for stage workload timeout=30s", *lab.steps[1].solve)
        verdict = run.check()
        assert verdict.ok, verdict
        kinds = [e.kind for e in run.context().events]
        assert kinds.count("dump_written") == 1 and kinds.count("kexec") == 1
        run.finish_step("passed")
        assert run.score().passed == 2
        run.close()
