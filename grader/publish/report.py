"""Publishing: scores and feedback from records — the table (-v: every check), Gradescope's
results.json, JUnit XML.  Everything learner-derived was cleaned where it entered the grader
(grader.text: control characters, terminal escapes and XML-invalid characters removed,
lengths bounded) before it reaches a record."""
import json
import os
import tempfile

from grader.text import clean  # noqa: E402,F401 - moved to grader.text; kept here for callers

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
        # a failed check worth no points is a note (e.g. 03's check of the pasted forwards):
        # it never turns a full score into "partial", and speaks only when nothing else fails
        failed = [t for t in g["tests"] if t["status"] != "passed" and t["max_score"] > 0]
        notes = [t for t in g["tests"] if t["status"] != "passed" and t["max_score"] == 0]
        statuses = {KIND_STATUS.get(t.get("kind"), "failed") for t in failed}
        scored = [t for t in g["tests"] if t["max_score"] > 0]
        if not failed:
            g["status"], g["feedback"] = "passed", f"all {len(scored)} checks passed"
            if notes and notes[0]["message"].strip():
                g["feedback"] += "; note: " + notes[0]["message"].strip().splitlines()[0]
        else:
            worst = min(statuses, key=STATUS_ORDER.index)
            if worst == "failed" and len(failed) < len(scored):
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
    """Every check with its full message (for -v), then the total.  A message repeated
    within an exercise (e.g. "not implemented yet" for each check) is printed once."""
    out = []
    for g in exercises(records):
        out.append(f"{g['notebook']} · {g['exercise']}: {_fmt(g['score'])}/{_fmt(g['max_score'])}")
        shown = set()
        for t in g["tests"]:
            mark = "✓" if t["status"] == "passed" else "✗"
            out.append(f"  {mark} {t['name']}  [{_fmt(t['score'])}/{_fmt(t['max_score'])}]")
            msg = t["message"].strip()
            if t["status"] != "passed" and msg:
                if msg in shown:
                    out.append("      (the same as above)")
                    continue
                shown.add(msg)
                out.extend("      " + ln for ln in msg.splitlines())
    total = sum(r["score"] for r in records)
    top = sum(r["max_score"] for r in records)
    out.append(f"total: {_fmt(total)}/{_fmt(top)}")
    return "\n".join(out)


def junit(records, seconds=0.0):
    """JUnit XML (one testsuite, a testcase per check; failures carry the message)."""
    import xml.etree.ElementTree as ET
    failed = sum(r["status"] != "passed" for r in records)
    suite = ET.Element("testsuite", name="grader", tests=str(len(records)), failures=str(failed),
                       errors="0", skipped="0", time=f"{seconds:.3f}")
    for r in records:
        case = ET.SubElement(suite, "testcase", classname=f"{r['notebook']}.{r['exercise']}",
                             name=f"{r.get('check') or r['name']}", time="0")
        case.set("title", r["name"])
        if r["status"] != "passed":
            f = ET.SubElement(case, "failure", message=r["message"].strip().split("\n")[0][:500])
            f.text = r["message"]
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def write_text_atomic(path, text):
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".results-", dir=os.path.dirname(path) or ".")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")
