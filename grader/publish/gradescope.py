"""The Gradescope side: run by run_autograder for each submission.

    python -m grader.publish.gradescope [--root /autograder]

Finds the learner's course notebooks anywhere in /autograder/submission (or in a .zip file
there), grades them with the settings in gradescope.json (next to the grader package, written
by `python -m grader.package gradescope`), and writes /autograder/results/results.json from
this process — atomically, after every process of the learner is gone, and also when
something goes wrong (then with a score of 0 and the reason), so Gradescope never shows
"the autograder failed to execute correctly" without one.  No network is used.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from grader.config import DEFAULT, GRADER_DIR, GRADESCOPE
from grader.publish import report

CONFIG = GRADER_DIR.parent / "gradescope.json"   # next to grader/ in the autograder zip
DEFAULTS = {"seed": DEFAULT.seed, **GRADESCOPE, "visibility": None, "stdout_visibility": "hidden",
            "exercise_visibility": {}}


def load_config(path=CONFIG):
    cfg = dict(DEFAULTS)
    if Path(path).exists():
        cfg.update(json.loads(Path(path).read_text()))
    return cfg


def lock_down(root):
    """As root: nobody else may enter /autograder (results, submission metadata with earlier
    scores, the reference solutions).  The learner's process reads nothing there: Python
    and NumPy live in /opt, and the grader is imported before privileges are dropped."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        try:
            os.chmod(root, 0o700)
        except OSError:
            pass


def find_notebooks(submission, folder, stems):
    from grader import batch
    staged = batch.stage(submission, folder, stems)
    if staged.fatal:
        tried = []
        for z in sorted(Path(submission).glob("*.zip")):
            again = batch.stage(z, folder, stems)
            if not again.fatal:
                return again
            tried.append((z, again))
        if tried:   # the upload is a zip that cannot be used: say what is wrong with it, as batches do
            z, again = tried[0]
            if not again.fatal.startswith(z.name):
                again.fatal = f"{z.name}: {again.fatal}"
            return again
    return staged


def apply_visibility(records, cfg):
    per = cfg.get("exercise_visibility") or {}
    for r in records:
        vis = per.get(r["exercise"]) or r.get("visibility") or cfg.get("visibility")
        if vis:
            r["visibility"] = vis
    return records


def failure(why):
    return {"score": 0, "output": f"The autograder could not grade your submission: {why}",
            "tests": [{"name": "Your submission could be graded", "score": 0, "max_score": 0,
                       "status": "failed", "output": why}]}


def grade(root, cfg):
    from grader import engine
    from grader.sandbox.host import sandbox_available
    if not sandbox_available():
        return failure("the autograder cannot sandbox learner code on this machine (no fork or "
                       "resource limits), so it refuses to grade; please tell your instructor"), None
    stems = engine.course_stems()
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="gradescope-"))
    try:
        folder = work / "submission"
        folder.mkdir()
        staged = find_notebooks(root / "submission", folder, stems)
        if staged.fatal:
            return failure(staged.fatal + " — upload your notebooks (e.g. 01_bernoulli_mask.ipynb), "
                           "or a .zip file of them"), None
        config = DEFAULT.with_(seed=cfg["seed"], timeout=cfg["timeout"], memory=cfg["memory"],
                               submission_timeout=cfg["submission_timeout"], only=cfg.get("only"),
                               jobs=cfg.get("jobs") or 1,
                               hide=tuple(str(root / x) for x in ("results", "submission",
                                                                 "submission_metadata.json")))
        sub = engine.load([str(folder)], config, unreadable=staged.unreadable)
        records = engine.grade(sub, config, label="your submission")
        data = report.gradescope(apply_visibility(records, cfg), time.monotonic() - t0)
        if staged.notes:
            data["output"] += "\n\nAbout your upload:\n" + "\n".join(f"- {n}" for n in staged.notes)
        return data, records
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m grader.publish.gradescope")
    p.add_argument("--root", default="/autograder", help="Gradescope's folder (default /autograder)")
    a = p.parse_args(argv)
    root = Path(a.root)
    out = root / "results" / "results.json"
    records = None
    try:
        cfg = load_config()
        lock_down(root)
        data, records = grade(root, cfg)
    except Exception as e:  # noqa: BLE001 - the learner must see a reason, never a blank failure
        cfg = dict(DEFAULTS)
        data = failure(f"internal error in the grader ({type(e).__name__}: {e}); please tell "
                       "your instructor")
    if cfg.get("stdout_visibility"):
        data["stdout_visibility"] = cfg["stdout_visibility"]
    out.parent.mkdir(parents=True, exist_ok=True)
    report.write_json_atomic(out, data)
    print(report.table(records) if records else data["output"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
