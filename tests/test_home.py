"""The home's lock against real processes (a second holder refused, a SIGKILLed holder's lock
taken over) and the manifest's rules for what a run may read."""

import os
import signal
import subprocess
import sys

import pytest

from recpie_core import home
from recpie_core.home import HomeError, HomeLock, Manifest, read_manifest, settle, write_manifest

HOLD = """
import sys, time
from recpie_core.home import HomeLock
lock = HomeLock(sys.argv[1], "holder").acquire()
print("locked", flush=True)
sys.stdin.readline()  # until the test says so
lock.release()
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the home's lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_holder_is_refused_naming_the_first(tmp_path, holder):
    with pytest.raises(HomeError, match=rf"in use by pid {holder.pid} \(holder, started 20\d\d-"):
        HomeLock(tmp_path, "recpie run").acquire()


def test_a_holder_that_has_not_yet_written_its_name_is_still_named(tmp_path):
    """Found by CI: two runs on a fresh home, the second refused in the moment between the first
    taking the lock and writing its name into the file."""
    late = (f"import fcntl, os, sys, time\nfd = os.open({str(tmp_path / home.LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(0.3)\n"
            "os.pwrite(fd, b'{\"pid\": %d, \"command\": \"late\", \"started\": \"now\"}' % os.getpid(), 0)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", late], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(HomeError, match=rf"in use by pid {proc.pid} \(late, started now\)"):
            HomeLock(tmp_path, "recpie run").acquire()
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with HomeLock(tmp_path, "recpie run") as lock:
        assert lock.taken_over.pid == holder.pid and lock.taken_over.command == "holder"
        assert f'"pid": {os.getpid()}' in (tmp_path / home.LOCK_NAME).read_text()


def test_a_waiter_gets_the_lock_when_the_holder_releases_it(tmp_path, holder):
    told = []

    def on_busy(message):
        told.append(message)
        holder.stdin.write("release\n")
        holder.stdin.flush()

    with HomeLock(tmp_path, "recpie run").acquire(on_busy=on_busy) as lock:
        assert lock.taken_over is None  # released cleanly, while the holder lives on
    assert len(told) == 1 and f"in use by pid {holder.pid} (holder" in told[0]


def test_a_released_lock_is_free_and_clean(tmp_path):
    with HomeLock(tmp_path, "first"):
        with pytest.raises(HomeError, match=rf"pid {os.getpid()} \(first"):
            HomeLock(tmp_path, "second").acquire()
    with HomeLock(tmp_path, "third") as lock:
        assert lock.taken_over is None


def test_the_manifest_round_trips_and_a_broken_one_is_named(tmp_path):
    assert read_manifest(tmp_path) is None
    write_manifest(tmp_path, Manifest("smoke", "/data/ca"))
    assert read_manifest(tmp_path) == Manifest("smoke", "/data/ca")
    (tmp_path / home.MANIFEST_NAME).write_text('{"profile": "smoke"')
    with pytest.raises(HomeError, match=home.MANIFEST_NAME):
        read_manifest(tmp_path)


def test_a_new_home_takes_what_is_asked_or_the_defaults():
    assert settle(None, None, None) == Manifest("demo", "")
    assert settle(None, "smoke", "/data/ca") == Manifest("smoke", "/data/ca")


def test_a_home_keeps_its_data_unless_forced():
    made = Manifest("smoke", "/data/ca")
    assert settle(made, None, None) == settle(made, "smoke", "/data/ca") == made
    with pytest.raises(HomeError, match="holds data from /data/ca, not from /data/nv"):
        settle(made, None, "/data/nv")
    with pytest.raises(HomeError, match="not from the synthetic dataset"):
        settle(made, None, "")
    with pytest.raises(HomeError, match="made with profile smoke, not demo"):
        settle(made, "demo", None)
    assert settle(made, None, "/data/nv", force=True) == Manifest("smoke", "/data/nv")
    assert settle(made, "demo", None, force=True) == Manifest("demo", "/data/ca")
