"""Scores and feedback from test records: the table, and Gradescope's results.json."""
import json
import os
import tempfile

STATUS_ORDER = ["missing", "not found", "not implemented", "broken", "timeout", "crashed",
                "error", "failed", "partial", "passed"]
KIND_STATUS = {"not_found": "not found", "not_implemented": "not implemented", "broken": "broken",
               "timeout": "timeout", "crash": "crashed", "exit": "crashed", "memory": "crashed",
               "output": "crashed", "missing": "missing", "grader_error": "error"}


def exercises(records):
    """Group test records by (notebook, exercise), in order, with points and a status."""
    groups = {}
    for r in records:
        g = groups.setdefault((r["notebook"], r["exercise"]), {
            "notebook": r["notebook"], "exercise": r["exercise"], "score": 0.0, "max_score": 0.0,
            "tests": []})
        g["tests"].append(r)
        g["score"] += r["score"]
        g["max_score"] += r["max_score"]
    for g in groups.values():
        failed = [t for t in g["tests"] if t["status"] != "passed"]
        statuses = {KIND_STATUS.get(t.get("kind"), "failed") for t in failed}
        if not failed:
            g["status"], g["feedback"] = "passed", f"all {len(g['tests'])} checks passed"
        else:
            worst = min(statuses, key=STATUS_ORDER.index)
            if worst == "failed" and len(failed) < len(g["tests"]):
                worst = "partial"
            g["status"] = worst
            first = failed[0]
            g["feedback"] = first["message"].strip().splitlines()[0] if first["message"].strip() else first["name"]
    return list(groups.values())


def _fmt(x):
    return f"{x:g}"


def table(records, width=100):
    """The text table: exercise, points, status, one-line feedback; then the total."""
    ex = exercises(records)
    rows = [(f"{g['notebook'][:2]} {g['exercise']}", f"{_fmt(g['score'])}/{_fmt(g['max_score'])}",
             g["status"], g["feedback"]) for g in ex]
    heads = ("exercise", "points", "status", "feedback")
    w = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads[:3])]
    room = max(30, width - sum(w) - 6)
    lines = ["  ".join(h.ljust(w[i]) if i < 3 else h for i, h in enumerate(heads))]
    lines.append("  ".join("-" * x for x in w) + "  " + "-" * 8)
    for r in rows:
        fb = r[3] if len(r[3]) <= room else r[3][: room - 1] + "…"
        lines.append(f"{r[0].ljust(w[0])}  {r[1].rjust(w[1])}  {r[2].ljust(w[2])}  {fb}")
    total, top = sum(g["score"] for g in ex), sum(g["max_score"] for g in ex)
    lines.append(f"total: {_fmt(total)}/{_fmt(top)}")
    return "\n".join(lines)


def details(records):
    """Every check with its full message (for -v)."""
    out = []
    for g in exercises(records):
        out.append(f"{g['notebook']} · {g['exercise']}: {_fmt(g['score'])}/{_fmt(g['max_score'])}")
        for t in g["tests"]:
            mark = "✓" if t["status"] == "passed" else "✗"
            out.append(f"  {mark} {t['name']}  [{_fmt(t['score'])}/{_fmt(t['max_score'])}]")
            if t["status"] != "passed":
                out.extend("      " + ln for ln in t["message"].strip().splitlines())
    return "\n".join(out)


def gradescope(records, seconds=None, visibility=None):
    """Gradescope's results.json as a dict (score, tests[] with name/score/max_score/status/output)."""
    tests = []
    for r in records:
        t = {"name": f"{r['notebook']} · {r['exercise']} · {r['name']}", "score": r["score"],
             "max_score": r["max_score"], "status": "passed" if r["status"] == "passed" else "failed",
             "output": r["message"] if r["status"] != "passed" else "passed",
             "number": r["number"], "check": r.get("check", "")}
        if visibility or r.get("visibility"):
            t["visibility"] = r.get("visibility") or visibility
        tests.append(t)
    out = {"score": round(sum(r["score"] for r in records), 6), "tests": tests,
           "output": table(records)}
    if seconds is not None:
        out["execution_time"] = round(seconds, 3)
    return out


def write_json_atomic(path, data):
    """Write JSON next to path then rename over it: readers never see half a file."""
    path = os.path.abspath(path)
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".results-", dir=d)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)   # as open() would have made it, not mkstemp's 0600
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
