"""tools/harness.py: runs trivial commands in fresh processes, measures them, alternates them in rounds."""
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools import harness  # noqa: E402

# MB (filled in by the test) MiB touched, then ~0.3 s of CPU: big enough to tell from the interpreter's own cost
HOG = ("import os, sys, time, json\n"
       "a = bytearray(MB * 1024 * 1024)\n"
       "for i in range(0, len(a), 4096): a[i] = 1\n"
       "t = time.process_time()\n"
       "while time.process_time() - t < 0.3: pass\n"
       "print('noise'); print(json.dumps({'env': os.environ.get('HARNESS_TEST'), 'cwd': os.getcwd()}))\n"
       "print('STAMP 1.5', file=sys.stderr); print('STAMP 2.5', file=sys.stderr)\n")


def test_run_measures_a_process(tmp_path):
    # a child's ru_maxrss starts from this process's resident set at the spawn (Linux): the hog
    # touches 80 MiB more than that floor, so only its own high-water mark can reach the bound
    floor = harness.peak_rss_mb()
    hog = HOG.replace("MB", str(int(floor) + 80))
    rec = harness.run([sys.executable, "-c", hog], env={"HARNESS_TEST": "yes"}, cwd=str(tmp_path))
    assert rec.ok and rec.returncode == 0
    assert rec.last_json() == {"env": "yes", "cwd": str(tmp_path)}
    assert rec.stderr_values("STAMP") == {"STAMP": "2.5"}  # the last line of a key wins
    assert rec.peak_rss_mb >= floor + 80
    assert rec.cpu >= 0.3  # user + sys of the child
    assert rec.wall >= rec.cpu * 0.5 and rec.wall < 60
    assert rec.started <= time.time() - rec.wall + 1
    assert rec.machine_busy >= 0.0 and len(rec.load_before) == 3 and len(rec.load_after) == 3
    small = harness.run([sys.executable, "-c", "pass"])
    assert small.peak_rss_mb < rec.peak_rss_mb - 50


def test_a_failure_says_what_failed():
    rec = harness.run([sys.executable, "-c", "import sys; print('why', file=sys.stderr); sys.exit(3)"])
    assert not rec.ok and rec.returncode == 3
    with pytest.raises(harness.ProcessFailed, match=r"the thing failed \(3\):\nwhy"):
        rec.check("the thing")
    with pytest.raises(harness.ProcessFailed, match="why"):
        harness.run([sys.executable, "-c", "import sys; print('why', file=sys.stderr); sys.exit(1)"], check=True)


def test_address_space_limit():
    grab = "a = bytearray(600 * 1024 * 1024); a[-1] = 1"
    assert harness.run([sys.executable, "-c", grab], limit_as_mb=300).returncode != 0
    assert harness.run([sys.executable, "-c", grab], limit_as_mb=2000).ok


def test_streamfm_argv_runs_the_checkout_in_cwd():
    rec = harness.run(harness.streamfm_argv("--version"), cwd=ROOT, check=True)
    assert rec.stdout.startswith("streamfm ")


def test_alternate_rounds_and_rotation():
    seen = []

    def job(name):
        return lambda: seen.append(name) or f"{name}{len(seen)}"

    out = harness.alternate([("a", job("a")), ("b", job("b")), ("c", job("c"))], 3,
                            on_result=lambda rnd, name, res: seen.append((rnd, name)))
    assert [x for x in seen if isinstance(x, str)] == list("abcabcabc")
    assert out == {"a": ["a1", "a7", "a13"], "b": ["b3", "b9", "b15"], "c": ["c5", "c11", "c17"]}
    assert (2, "c") in seen
    seen.clear()
    # groups, each rotated round by round: (x, y) then (p, q), starting one later every round
    out = harness.alternate([[("x", job("x")), ("y", job("y"))], [("p", job("p")), ("q", job("q"))]], 3,
                            rotate=True)
    assert "".join(seen) == "xypq" + "yxqp" + "xypq"
    assert [len(v) for v in out.values()] == [3, 3, 3, 3]


def test_alternate_processes_pairs_rounds():
    """Two commands alternating over rounds: each one's records in round order, all measured."""
    def cmd(code):
        return lambda: harness.run([sys.executable, "-c", code], check=True)

    out = harness.alternate([("one", cmd("print(1)")), ("two", cmd("print(2)"))], 2)
    assert [r.stdout.strip() for r in out["one"]] == ["1", "1"]
    assert [r.stdout.strip() for r in out["two"]] == ["2", "2"]
    starts = sorted((r.started, name) for name, rs in out.items() for r in rs)
    assert [name for _, name in starts] == ["one", "two", "one", "two"]


def test_code_at_extracts_a_commit_with_these_tools(tmp_path):
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    path = harness.code_at("HEAD", work=str(tmp_path))
    assert os.path.basename(path) == f"code-{head}"
    assert os.path.isfile(os.path.join(path, "streamfm", "__init__.py"))
    with open(os.path.join(path, "tools", "harness.py")) as fh, open(harness.__file__) as mine:
        assert fh.read() == mine.read()  # this checkout's tools, whatever the commit holds
    assert harness.code_at("HEAD", work=str(tmp_path)) == path  # extracted once


def test_status_of_this_process():
    assert harness.peak_rss_mb() > 10
    assert harness.status_mb("VmPeak") >= harness.status_mb("VmHWM")
    assert harness.status_mb("NoSuchKey") != harness.status_mb("NoSuchKey")  # NaN
