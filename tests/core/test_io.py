"""Atomic writes leave recognisable temporaries, and the orphans of killed writers are removed."""

import os
import subprocess
import sys
import time

import pytest

from graphssl.core import io
from graphssl.core.io import TEMP_SUFFIX, atomic_write_text, remove_stale_temporaries


def _dead_pid() -> int:
    """The id of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_killed_write_leaves_a_temporary_the_next_run_removes(tmp_path):
    # a writer killed between creating its temporary and renaming it (a real SIGKILL mid-write)
    script = (f"import os, signal\nfrom graphssl.core import io\n"
              f"def write(handle):\n    handle.write(b'x' * 1000); handle.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
              f"io._atomic_write({str(tmp_path / 'graphs.pt')!r}, 'wb', write)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode == -9
    [orphan] = [p for p in tmp_path.iterdir()]
    assert orphan.name.startswith(".graphs.pt.")  # named after its target
    assert orphan.name.endswith(TEMP_SUFFIX) and io.is_stale_temporary(orphan)
    assert remove_stale_temporaries(tmp_path) == [orphan] and not orphan.exists()


def test_live_writers_recent_foreign_files_and_other_files_are_kept(tmp_path):
    host = io._host()
    live = tmp_path / f".store.pt.{host}-{os.getpid()}.abc123{TEMP_SUFFIX}"
    dead = tmp_path / f".store.pt.{host}-{_dead_pid()}.def456{TEMP_SUFFIX}"
    foreign = tmp_path / f".store.pt.otherhost-1.ghi789{TEMP_SUFFIX}"
    legacy_new, legacy_old = tmp_path / ".last.pt.ab12cd34.tmp", tmp_path / ".last.pt.ef56gh78.tmp"
    keep = [tmp_path / "last.pt", tmp_path / "notes.tmp", tmp_path / "config.yaml"]
    for path in [live, dead, foreign, legacy_new, legacy_old, *keep]:
        path.write_text("x")
    hours_ago = time.time() - 2 * 3600
    os.utime(legacy_old, (hours_ago, hours_ago))
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, legacy_old])
    assert not dead.exists() and not legacy_old.exists()
    assert all(p.exists() for p in [live, foreign, legacy_new, *keep])
    days_ago = time.time() - 2 * 24 * 3600
    os.utime(foreign, (days_ago, days_ago))
    assert remove_stale_temporaries(tmp_path) == [foreign]


def test_cleaning_reaches_only_the_requested_depth(tmp_path):
    name = f".graphs.pt.{io._host()}-{_dead_pid()}.x1{TEMP_SUFFIX}"
    (tmp_path / "set-1" / "deeper").mkdir(parents=True)
    shallow, deep = tmp_path / "set-1" / name, tmp_path / "set-1" / "deeper" / name
    shallow.write_text("x")
    deep.write_text("x")
    assert remove_stale_temporaries(tmp_path, depth=0) == []
    assert remove_stale_temporaries(tmp_path, depth=1) == [shallow]
    assert deep.exists()


def test_a_successful_write_leaves_nothing_behind(tmp_path):
    atomic_write_text("hello", tmp_path / "a.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert remove_stale_temporaries(tmp_path / "missing") == []


@pytest.mark.parametrize("name", [".x.pt.host-12.abc.tmp", "x.graphssl-tmp", ".x.pt.host-abc.ab12.graphssl-tmp"])
def test_names_that_are_not_ours_are_never_removed(tmp_path, name):
    path = tmp_path / name
    path.write_text("x")
    old = time.time() - 30 * 24 * 3600
    os.utime(path, (old, old))
    assert remove_stale_temporaries(tmp_path) == [] and path.exists()
