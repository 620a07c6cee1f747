"""A class's results: summary.csv (one row per learner; every cell safe to open in a
spreadsheet), summary.json, each learner's results.json, and the overview printed at the
end of a batch.  Everything here reads answers that the batch's workers sent back."""
import csv
import io
from pathlib import Path

from grader.publish import report

PROBLEM_KINDS = {"timeout": "timeout", "crash": "crashed", "exit": "crashed", "memory": "memory limit",
                 "output": "output limit", "missing": "missing", "grader_error": "grader error"}


def problems(answer):
    """The learner's problems in a few words each: unreadable, missing, limits hit, crashes."""
    out = []
    if answer.get("fatal"):
        out.append(f"unreadable submission: {answer['fatal']}")
    if answer.get("error"):
        out.append(f"grader error: {answer['error']}")
    unreadable = answer.get("unreadable", {})
    out += [f"{stem}.ipynb unreadable: {why}" for stem, why in sorted(unreadable.items())]
    missing, limits = [], []
    for g in report.exercises(answer.get("records", [])):
        first = next((t for t in g["tests"] if t.get("kind") in PROBLEM_KINDS), None)
        if first is None or g["notebook"] in unreadable:
            continue
        if first["kind"] == "missing":
            missing += [] if g["notebook"] in missing else [g["notebook"]]
            continue
        msg = " ".join(first["message"].split())
        msg = msg if len(msg) <= 140 else msg[:139] + "…"
        limits.append(f"{g['notebook'][:2]} {g['exercise']}: {PROBLEM_KINDS[first['kind']]} ({msg})")
    if missing:
        out.append("missing: " + ", ".join(f"{m}.ipynb" for m in missing))
    return out + limits


def _exercise_columns(answers):
    cols, maxes = [], {}
    for a in answers.values():
        for g in report.exercises(a.get("records", [])):
            key = f"{g['notebook'][:2]} {g['exercise']}"
            if key not in maxes:
                cols.append((g["notebook"], key))
            maxes[key] = max(maxes.get(key, 0.0), g["max_score"])
    cols.sort(key=lambda c: c[0])   # notebook order; exercises keep their order within one
    return [k for _, k in cols], maxes


def _fmt(x):
    return f"{x:g}"


def summarize(entries, answers, settings, seconds):
    cols, maxes = _exercise_columns(answers)
    top = sum(maxes.values())
    rows = []
    for ident, src in entries:
        a = answers.get(ident) or {"records": [], "error": "not graded"}
        pts = {k: 0.0 for k in cols}
        for g in report.exercises(a.get("records", [])):
            pts[f"{g['notebook'][:2]} {g['exercise']}"] = g["score"]
        rows.append({"learner": ident, "submission": report.clean(str(src)), "score": round(sum(pts.values()), 6),
                     "max_score": top, "exercises": pts, "problems": problems(a),
                     "notes": a.get("notes", []), "seconds": a.get("seconds"),
                     "results": f"learners/{ident}/results.json"})
    return {"grader": {k: settings[k] for k in ("seed", "timeout", "submission_timeout", "memory",
                                                    "only", "jobs")},
            "isolation": next((a.get("isolation") for a in answers.values() if a.get("isolation")), None),
            "seconds": round(seconds, 1), "max_score": top,
            "exercises": [{"exercise": k, "max_score": maxes[k]} for k in cols], "learners": rows}


def csv_cell(text):
    """Text that a spreadsheet shows as text: control characters stripped, and a leading
    = + - @ (a formula) neutralised with an apostrophe."""
    text = " ".join(report.clean(text).split())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def summary_csv(summary):
    buf = io.StringIO()
    cols = [e["exercise"] for e in summary["exercises"]]
    w = csv.writer(buf)
    w.writerow(["learner", "score", "max_score", *cols, "problems", "submission", "seconds"])
    for r in summary["learners"]:
        w.writerow([csv_cell(r["learner"]), _fmt(r["score"]), _fmt(r["max_score"]),
                    *[_fmt(r["exercises"][c]) for c in cols], csv_cell("; ".join(r["problems"])),
                    csv_cell(r["submission"]), r["seconds"] if r["seconds"] is not None else ""])
    return buf.getvalue()


def learner_results(answer, visibility=None):
    """Gradescope's results.json for one learner (also when nothing could be graded)."""
    records = answer.get("records", [])
    if records:
        data = report.gradescope(records, answer.get("seconds"), visibility)
    else:
        why = answer.get("fatal") or answer.get("error") or "nothing was graded"
        data = {"score": 0, "tests": [], "output": f"Your submission could not be graded: {why}"}
    notes = answer.get("notes") or []
    if notes:
        data["output"] = data.get("output", "") + "\n\nAbout your upload:\n" + "\n".join(f"- {n}" for n in notes)
    return data


def overview(summary, out):
    rows = summary["learners"]
    top = summary["max_score"]
    scores = [r["score"] for r in rows]
    lines = [f"results: {out}/summary.csv, {out}/summary.json, {out}/learners/<name>/results.json"]
    if scores:
        mean = sum(scores) / len(scores)
        lines.append(f"scores: mean {mean:.1f}/{_fmt(top)}, full marks {sum(s == top for s in scores)}, "
                     f"zero {sum(s == 0 for s in scores)} of {len(scores)}")
    bad = [r for r in rows if r["problems"]]
    if bad:
        lines.append(f"{len(bad)} submission{'s' if len(bad) != 1 else ''} with problems:")
        for r in bad[:20]:
            p = r["problems"][0]
            lines.append(f"  {r['learner']}: {p if len(p) <= 100 else p[:99] + '…'}"
                         + (f" (+{len(r['problems']) - 1} more)" if len(r["problems"]) > 1 else ""))
        if len(bad) > 20:
            lines.append(f"  … and {len(bad) - 20} more (see summary.csv)")
    iso = summary.get("isolation")
    if iso:
        lines.append(isolation_line(iso))
    return "\n".join(lines)


def readable_by_others(path):
    """Can an account other than the owner (e.g. the learner's uid) open path?"""
    p = Path(path).resolve()
    try:
        if not p.stat().st_mode & 0o004:
            return False
        return all(q.stat().st_mode & 0o001 for q in p.parents)
    except OSError:
        return False


def exposure_warning(iso, paths):
    """Without mount namespaces (e.g. in Docker without CAP_SYS_ADMIN) submissions are hidden
    from learner code only by their permissions: say so when others may read them."""
    if not iso or iso.get("uid") in (None, 0) or iso.get("private_tmp"):
        return ""
    open_ = [str(p) for p in paths if readable_by_others(p)]
    if not open_:
        return ""
    return (f"warning: learner code ran as uid {iso['uid']} and could read {', '.join(open_)} (other "
            "learners' work, the reference solutions): make them private (chmod -R go-rwx) or grade "
            "where mount namespaces are allowed (root with CAP_SYS_ADMIN)")


def isolation_line(iso):
    bits = [f"learner code ran as uid {iso.get('uid')}"]
    if iso.get("sweep") == "uid":
        bits.append("a uid of its own per worker")
    bits.append("no network" if iso.get("network") else "network not cut off")
    bits.append("a private /tmp" if iso.get("private_tmp") else "the shared /tmp")
    if iso.get("hidden"):
        bits.append(f"{iso['hidden']} grader paths hidden")
    return "isolation: " + ", ".join(bits)
