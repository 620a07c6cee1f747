"""The grader never damages the host, validates every option, survives its own faults and
leaves nothing behind (issue: a grade nobody has to re-run).  Each scenario is judged by its
outcome: the host's special files intact, rows identical to an undisturbed run, the exit
status and its one line, nothing left in the temporary folders."""
import csv
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from grader import output, uploads
from grader.nbfile import BadInput
from tests.grading import ROOT, notebook, solution_cells

STEM = "01_bernoulli_mask"
SWAPPED = ("def bernoulli_mask(shape, p, rng=None):\n    rng = np.random.default_rng() if rng is None else rng\n"
           "    return rng.random(shape) < p\n")
SLURM = ROOT / "grader" / "templates" / "slurm" / "grade-class.sbatch"
WORKFLOW = ROOT / "grader" / "templates" / "github-actions" / "grade-class.yml"
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")


def grader(*args, env=None, module="grader", **kw):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, **kw)


def one_line(proc, status, words):
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("grader"), proc.stderr
    assert words in err[0], err[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def rows(out):
    """summary.csv without its timings."""
    with open(Path(out) / "summary.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def make_class(root, slow=False):
    """ann: correct; bob (a zip): keep/drop swapped; cid: a near-miss name and two copies of 02."""
    first = ["import time\ntime.sleep(1.0)"] if slow else []
    subs = root / "subs"
    (subs / "ann").mkdir(parents=True)
    notebook(subs / "ann" / f"{STEM}.ipynb", first + solution_cells(STEM))
    nb = notebook(root / f"{STEM}.ipynb", first + solution_cells(STEM) + [SWAPPED])
    with zipfile.ZipFile(subs / "bob.zip", "w") as z:
        z.write(nb, f"bob/{STEM}.ipynb")
    (subs / "cid" / "copy").mkdir(parents=True)
    notebook(subs / "cid" / "01-bernoulli_mask.ipynb", solution_cells(STEM))
    for where in (subs / "cid", subs / "cid" / "copy"):
        notebook(where / "02_classic_vs_inverted.ipynb", ["x = 1"])
    return subs


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    subs = make_class(tmp)
    out = tmp / "one"
    proc = grader(subs, "--out", out, "--only", "01", "--jobs", "2", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    return subs, out


# ---------------------------------------------------------------- outputs: never damage the host
def test_outputs_that_are_not_regular_files_are_written_never_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    output.write_text(fifo, "through a FIFO\n")
    reader.join(10)
    assert got == [b"through a FIFO\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)

    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    output.write_json(link, {"a": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.json", "real.json"]

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    for bad, words in ((tmp_path / "sock", "is a socket"), (tmp_path, "is a folder"),
                       (tmp_path / "nope" / "r.json", "does not exist")):
        with pytest.raises(BadInput, match=words):
            output.check(bad)
    sock.close()


@as_root
def test_a_device_given_as_output_stays_a_device(tmp_path):
    """As root, --json and --junitxml to device nodes (our own, and a read-only look at
    /dev/null's type) write into them; nothing is renamed over them."""
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    before = os.stat("/dev/null")
    proc = grader(ROOT / "solutions" / f"{STEM}.ipynb", "--only", "bernoulli_mask",
                  "--json", "/dev/null", "--junitxml", node)
    assert proc.returncode == 0, proc.stderr
    for dev in (node, Path("/dev/null")):
        assert stat.S_ISCHR(os.lstat(dev).st_mode), dev
    assert os.stat("/dev/null").st_rdev == before.st_rdev and os.stat("/dev/null").st_ino == before.st_ino
    assert list(tmp_path.iterdir()) == [node]


def test_json_to_dev_stdout_prints_the_results_before_the_table(tmp_path):
    """And a full device (our own node like /dev/full, as root) loses nothing but that file:
    the table still shows the scores, and the one line says what could not be written."""
    full = []
    if os.geteuid() == 0:
        os.mknod(tmp_path / "full", stat.S_IFCHR | 0o666, os.makedev(1, 7))
        full = ["--junitxml", tmp_path / "full"]
    proc = grader(ROOT / "solutions" / f"{STEM}.ipynb", "--only", "bernoulli_mask", "--json", "/dev/stdout", *full)
    data, end = json.JSONDecoder().raw_decode(proc.stdout)
    assert data["score"] == 13 and "total: 13/13" in proc.stdout[end:]
    if full:
        one_line(proc, 3, "could not write")
        assert "No space left on device" in proc.stderr and stat.S_ISCHR(os.lstat(tmp_path / "full").st_mode)
    else:
        assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- options
BAD_OPTIONS = [
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--memory", "64"], "--memory must be at least"),
    (["--memory", "-5"], "--memory must be at least"),
    (["--timeout", "0"], "--timeout must be at least"),
    (["--timeout", "nan"], "--timeout must be at least"),
    (["--submission-timeout", "1"], "--submission-timeout must be at least"),
    (["--jobs", "0", "--out", "{tmp}/o"], "--jobs must be at least 1"),
    (["--shard", "4/3", "--out", "{tmp}/o"], "--shard 4/3"),
    (["--shard", "x", "--out", "{tmp}/o"], "--shard must be I/N"),
    (["--shard", "1/2"], "--shard is for grading a class"),
    (["--json", "{tmp}"], "is a folder"),
    (["--resume", "--out", "{tmp}/o"], "nothing to resume"),
]


def test_every_option_is_validated_in_one_line_with_exit_2(tmp_path, capsys):
    from grader import cli
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        for args, words in BAD_OPTIONS:
            status = cli.main([str(ROOT / "solutions" / f"{STEM}.ipynb"), *[a.format(tmp=tmp_path) for a in args]])
            out, err = capsys.readouterr()
            assert status == 2 and err.count("\n") == 1 and err.startswith("grader: ") and words in err, (args, err)
            assert not (tmp_path / "o").exists()
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    proc = grader(ROOT / "solutions" / f"{STEM}.ipynb", "--memory", "128")   # and as a command
    one_line(proc, 2, "--memory must be at least 256 MiB")


def test_a_batch_is_refused_when_the_reference_solutions_lose_points(tmp_path, undisturbed):
    subs, _ = undisturbed
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "data").symlink_to(ROOT / "data")
    notebook(course / "solutions" / f"{STEM}.ipynb", solution_cells(STEM) + [SWAPPED])
    proc = grader(subs, "--out", tmp_path / "o", "--only", "01", "--course", course)
    one_line(proc, 2, "the reference solutions must get full marks")
    assert "01 bernoulli_mask" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course"]


# ---------------------------------------------------------------- the grader's own faults
FAULT = """
import os, sys
if "grader.workers" in sys.orig_argv:
    from grader import uploads
    _stage = uploads.stage
    def stage(src, folder, stems):
        if os.environ["FAULT"] == "all" or os.path.basename(src) == os.environ["FAULT"]:
            os._exit(9)
        return _stage(src, folder, stems)
    uploads.stage = stage
elif os.environ["FAULT"] == "disk" and "grader.merge" not in sys.orig_argv:
    import errno
    from grader import resultsdir
    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    resultsdir.write_summary = full
"""


@pytest.fixture
def fault(tmp_path):
    d = tmp_path / "fault"
    d.mkdir()
    (d / "sitecustomize.py").write_text(FAULT)
    return lambda kind: {"FAULT": kind, "PYTHONPATH": f"{ROOT}{os.pathsep}{d}"}


def test_workers_that_all_die_give_exit_3_and_write_no_scores(tmp_path, undisturbed, fault):
    subs, _ = undisturbed
    proc = grader(subs, "--out", tmp_path / "o", "--only", "01", "--jobs", "2", env=fault("all"))
    one_line(proc, 3, "the grader failed on the reference solutions (the grader's worker process ended")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault"], "no results, no zeros, no leftovers"


def test_a_learner_the_grader_fails_on_has_no_score_and_resume_grades_only_them(tmp_path, undisturbed, fault):
    subs, one = undisturbed
    out = tmp_path / "o"
    proc = grader(subs, "--out", out, "--only", "01", "--jobs", "2", "--seed", "3", env=fault("bob.zip"))
    assert proc.returncode == 4, proc.stderr
    assert "--resume" in proc.stderr and "bob" in proc.stderr and proc.stderr.count("\n") == 1
    got = {r["learner"]: r for r in rows(out)}
    assert got["bob"]["score"] == "" and got["bob"]["01 bernoulli_mask"] == ""
    assert "not your code" in got["bob"]["problems"]
    assert "score" not in json.loads((out / "learners" / "bob" / "results.json").read_text())
    assert got["ann"] == rows(one)[0]
    command = proc.stderr.split("grade them again with: ")[1].split()
    assert command[:3] == ["python", "-m", "grader"]
    again = grader(*command[3:])
    assert again.returncode == 0, again.stderr
    assert "resuming: 2 learners" in again.stdout and "graded 1 submissions" in again.stdout
    assert rows(out) == rows(one)


def _small_disk(where, inodes):
    """A tmpfs at `where` holding at most `inodes` files and folders (its root included), or
    None where mounting is not allowed."""
    where.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=4m,nr_inodes={inodes}", "tmpfs", str(where)],
                        capture_output=True).returncode == 0
    return where if ok else None


def test_a_full_disk_at_the_end_keeps_every_result_and_merge_finishes(tmp_path, undisturbed, fault):
    """On a tmpfs with room for every learner's files but not for the summary (where it can be
    mounted; else the summary's write fails with ENOSPC injected)."""
    subs, one = undisturbed
    kept = sum(len(d) + len(f) for _, d, f in os.walk(one)) - 2     # all but summary.csv, summary.json
    disk = _small_disk(tmp_path / "disk", kept + 3)   # + its root, the partial folder, its owner file
    try:
        out = (disk or tmp_path) / "o"
        proc = grader(subs, "--out", out, "--only", "01", "--jobs", "2", "--seed", "3",
                      env=None if disk else fault("disk"))
        one_line(proc, 3, "No space left on device")
        assert "every learner's results (3) are kept in" in proc.stderr
        finish = proc.stderr.split("with: ")[1].split()
        assert finish[:3] == ["python", "-m", "grader.merge"] and not out.exists()
        if disk:   # room again
            subprocess.run(["mount", "-o", "remount,nr_inodes=1000", str(disk)], check=True)
        done = grader(*finish[3:], module="grader.merge")
        assert done.returncode == 0, done.stderr
        assert rows(out) == rows(one)
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []
    finally:
        if disk:
            subprocess.run(["umount", str(disk)], check=True)


# ---------------------------------------------------------------- shards
def test_three_shards_merged_equal_one_run(tmp_path, undisturbed):
    subs, one = undisturbed
    shards = []
    for i in (1, 2, 3):   # as Slurm runs the job-array example's tasks
        shards.append(tmp_path / f"r.shard-{i}")
        proc = subprocess.run(["bash", SLURM, subs, tmp_path / "r", "--only", "01", "--seed", "3",
                               "--no-reference-check"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "SLURM_ARRAY_TASK_ID": str(i),
                                   "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_CPUS_PER_TASK": "2",
                                   "PYTHON": sys.executable})
        assert proc.returncode == 0, proc.stderr
        assert len(rows(shards[-1])) == 1
    missing = grader("--out", tmp_path / "m", shards[0], shards[2], module="grader.merge")
    one_line(missing, 2, "shard 2/3 is missing")
    merged = grader("--out", tmp_path / "m", *shards, module="grader.merge")
    assert merged.returncode == 0, merged.stderr
    a, b = (json.loads((d / "summary.json").read_text()) for d in (one, tmp_path / "m"))
    for s in (a, b):   # timings, and which of the machine's spare uids learner code ran as
        s.pop("seconds")
        (s.get("isolation") or {}).pop("uid", None)
        for r in s["learners"]:
            r.pop("seconds")
    assert a == b
    assert rows(tmp_path / "m") == rows(one)
    head = (one / "summary.csv").read_text().splitlines()[0]
    assert (tmp_path / "m" / "summary.csv").read_text().splitlines()[0] == head


def test_the_class_workflow_pins_every_action_and_only_reads():
    import yaml
    flow = yaml.safe_load(WORKFLOW.read_text())
    assert flow["permissions"] == {"contents": "read"}
    steps = [s for job in flow["jobs"].values() for s in job["steps"]]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    shards = flow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(flow["env"]["SHARDS"]) + 1))
    runs = " ".join(s.get("run", "") for s in steps)
    assert '--shard "$SHARD/$SHARDS"' in runs and "python -m grader.merge --out class-results shard-*" in runs


# ---------------------------------------------------------------- messages
def test_the_summary_names_near_miss_files_and_duplicate_copies(undisturbed):
    _, one = undisturbed
    cid = {r["learner"]: r for r in rows(one)}["cid"]
    assert "missing: 01_bernoulli_mask.ipynb (found 01-bernoulli_mask.ipynb)" in cid["problems"]
    assert "several copies of 02_classic_vs_inverted.ipynb: graded 02_classic_vs_inverted.ipynb" in cid["problems"]


def test_a_submission_removed_or_added_mid_batch_is_named(tmp_path):
    stems = {"01": STEM}
    (tmp_path / "s").mkdir()
    staged = uploads.stage(tmp_path / "gone", tmp_path / "s", stems)
    assert staged.fatal == "gone was removed while the class was being graded"
    from grader import batch
    (tmp_path / "class" / "ann").mkdir(parents=True)
    everyone = uploads.discover([tmp_path / "class"], stems)
    (tmp_path / "class" / "zoe.zip").write_bytes(b"")

    class A:
        paths = [str(tmp_path / "class")]
    assert batch.added_meanwhile(A, stems, everyone) == ["zoe.zip"]


# ---------------------------------------------------------------- interruptions
def _start(subs, out, tmp, extra=None, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), **(extra or {})}
    return subprocess.Popen([sys.executable, "-m", "grader", str(subs), "--out", str(out), "--only", "01",
                             "--jobs", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _grading(tmp):
    """Wait until a learner is being graded (a worker has staged a submission)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(tmp.glob("grader-batch-*/tmp/grader-*")):
            return
        time.sleep(0.05)
    raise AssertionError("grading never started")


def _processes_with(text):
    found = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and text.encode() in (p / "environ").read_bytes():
                found.append(int(p.name))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def slow_class(tmp_path_factory):
    return make_class(tmp_path_factory.mktemp("slow"), slow=True)


@pytest.mark.parametrize("how", ["SIGINT twice, inherited as ignored", "SIGTERM", "SIGTERM, not as root"])
def test_an_interrupted_batch_leaves_nothing(tmp_path, slow_class, how):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if "ignored" in how else None
    proc = _start(slow_class, tmp_path / "o", tmp, {"GRADER_KEEP_ROOT": "1"} if "not" in how else None,
                  preexec_fn=ignore)
    _grading(tmp)
    if how.startswith("SIGTERM"):
        proc.send_signal(signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if how.startswith("SIGTERM") else 130), err
    assert err.strip().splitlines() == ["grader: interrupted; nothing was written"]
    assert list(tmp.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert _processes_with(str(tmp)) == []


def test_the_run_after_a_killed_batch_cleans_what_it_left(tmp_path, slow_class, undisturbed):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _start(slow_class, tmp_path / "o", tmp)
    _grading(tmp)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while _processes_with(str(tmp)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(str(tmp)) == [], "the workers end with their parent"
    again = _start(undisturbed[0], tmp_path / "o", tmp)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert re.search(r"^note: removed [12] temporary folders? left by an earlier run that was killed$", out, re.M), out
    assert list(tmp.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["o", "tmp"]
