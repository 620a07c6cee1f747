"""One learner's submission from the command line is graded in two lanes (grader.engine.grade,
lanes=2): the notebooks split between the grader and a forked copy of it, each with a learner
process of its own.  The records must be those of one lane, in the same order, whatever the
submission holds; an interrupted grading leaves no lane and no learner process behind."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from grader import engine
from grader.config import DEFAULT
from grader.sandbox.host import sandbox_available
from tests.grading import ROOT, notebook, solution_cells, variant

pytestmark = pytest.mark.skipif(not sandbox_available(), reason="needs the sandbox (fork, resource limits)")

STEMS = list(engine.check_files())


def test_the_lanes_hold_every_notebook_once_and_about_half_the_work_each():
    for n in range(1, len(STEMS) + 1):
        stems = STEMS[:n]
        lanes = engine.split_lanes(stems, 2)
        assert sorted(s for lane in lanes for s in lane) == sorted(stems) and len(lanes) == min(2, n)
        cost = [sum(engine.LANE_COST.get(s[:2], 0.3) for s in lane) for lane in lanes]
        assert max(cost) <= sum(cost) / 2 + max(engine.LANE_COST.get(s[:2], 0.3) for s in stems) + 1e-9


def test_two_lanes_give_the_records_of_one_in_the_same_order(tmp_path):
    """A mixed submission: a mistake in 02 (keep and drop swapped) and in 04, 03 as handed out,
    05 missing, 06 without its functions, the rest correct."""
    sub = tmp_path / "sub"
    sub.mkdir()
    for stem in STEMS:
        if stem.startswith("02"):
            variant(sub, stem, "def dropout_forward_inverted(x, p, train=True, rng=None):\n"
                               "    rng = np.random.default_rng() if rng is None else rng\n"
                               "    m = rng.random(x.shape) < p\n    return x * m / (1 - p), m\n")
        elif stem.startswith("04"):
            variant(sub, stem, "def relative_error(a, b):\n    return float(np.max(np.abs(a - b)))\n")
        elif stem.startswith("03"):
            shutil.copy(ROOT / "notebooks" / f"{stem}.ipynb", sub)
        elif stem.startswith("06"):
            notebook(sub / f"{stem}.ipynb", ["x = 1"])
        elif not stem.startswith("05"):
            notebook(sub / f"{stem}.ipynb", solution_cells(stem))
    loaded = engine.load([sub])
    one = engine.grade(loaded, DEFAULT)
    info = {}
    two = engine.grade(loaded, DEFAULT, lanes=2, info=info)
    assert two == one
    assert info["isolation"] and 0 < sum(r["score"] for r in one) < sum(r["max_score"] for r in one)
    assert {r["status"] for r in one} == {"passed", "failed"}


def _learner_dirs(tmp):
    return [p for p in tmp.glob("grader-*") if p.is_dir()]


def test_an_interrupted_grading_in_two_lanes_leaves_nothing(tmp_path):
    """SIGTERM while both lanes run learner code: exit 143, nothing written, every learner
    process and the second lane gone, their folders removed."""
    sub, tmp = tmp_path / "sub", tmp_path / "tmp"
    sub.mkdir()
    tmp.mkdir()
    slow = "import time\n\ndef {name}(*args, **kwargs):\n    time.sleep(0.5)\n    return _{name}(*args, **kwargs)\n"
    for stem, name in (("02", "dropout_forward_inverted"), ("04", "relative_error")):
        full = next(s for s in STEMS if s.startswith(stem))
        cells = solution_cells(full)
        notebook(sub / f"{full}.ipynb", cells + [f"_{name} = {name}", slow.format(name=name)])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "grader", str(sub), "--json", str(tmp_path / "r.json")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_learner_dirs(tmp)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_learner_dirs(tmp)) == 2, "the two lanes never ran side by side"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)   # when the grader has ended, nothing it started may still run
    left = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and str(tmp).encode() in open(f"/proc/{p}/environ", "rb").read():
                left.append(p)
        except OSError:
            pass
    assert left == [] and list(tmp.iterdir()) == [] and not (tmp_path / "r.json").exists()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["grader: interrupted; nothing was written"]


def test_a_submission_time_budget_is_spent_by_one_lane(monkeypatch):
    """With --submission-timeout, which notebooks still run when the budget is spent depends on
    their order: one lane, so that the score does not depend on the machine's cores."""
    def no_lane(*a, **k):
        raise AssertionError("a second lane was started")
    monkeypatch.setattr(engine, "_Lane", no_lane)
    sub = engine.load([ROOT / "notebooks"])
    records = engine.grade(sub, DEFAULT.with_(submission_timeout=60.0), lanes=2)
    assert records and all(r["score"] == 0 for r in records)
