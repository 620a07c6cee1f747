"""A class's results: summary.csv (one row per learner; every cell safe to open in a
spreadsheet), summary.json, each learner's results.json, and the overview printed at the
end of a batch.  Everything here reads answers that the batch's workers sent back."""
import csv
import io
import unicodedata
from pathlib import Path

from grader import text
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
        near = answer.get("near") or {}
        out.append("missing: " + ", ".join(f"{m}.ipynb" + (f" (found {near[m]})" if m in near else "")
                                           for m in missing))
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
    return "" if x is None else f"{x:g}"


def display_name(src):
    """The learner's name exactly as the submission is named (its folder, or its zip without
    .zip): Unicode, spaces and case kept, only what no name needs removed (terminal escapes,
    control characters, direction overrides).  Folder names for results/learners/ are the
    batch's business; this is what a person and an LMS read."""
    name = Path(str(src)).name
    name = name[:-4] if name.lower().endswith(".zip") and len(name) > 4 else name
    return text.clean(name, text.MAX_NAME).replace("\n", " ").replace("\t", " ")


def _same(name):
    """Names an LMS or a file system may take for one person: Unicode-normalised, case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


# ---------------------------------------------------------------- roster
ROSTER_COLUMNS = {"name": ("submission", "name", "learner", "student"),
                  "student_id": ("student_id", "student id", "id", "sis user id", "sis_id", "sis id", "login"),
                  "email": ("email", "e-mail", "mail")}
MAX_ROSTER_BYTES = 16 * 2**20


def read_roster(path):
    """{submission name: {"student_id", "email"}} from a CSV whose header names a submission
    column (submission / name / learner) and an id and/or e-mail column; BadInput (one line)
    when it is unreadable, has no such columns or names a submission twice."""
    from grader.nbfile import BadInput
    if path is None:
        return None
    try:
        if Path(path).stat().st_size > MAX_ROSTER_BYTES:
            raise BadInput(f"roster {path} is larger than {MAX_ROSTER_BYTES // 2**20} MiB")
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else "it is not UTF-8 text"
        raise BadInput(f"cannot read roster {path}: {why}") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise BadInput(f"roster {path} is empty")
    head = [h.strip().lower() for h in rows[0]]
    col = {key: next((head.index(n) for n in names if n in head), None) for key, names in ROSTER_COLUMNS.items()}
    if col["name"] is None or (col["student_id"] is None and col["email"] is None):
        raise BadInput(f"roster {path}: the first line must name a submission column (submission, name) and "
                       f"a student id or e-mail column (student_id, email); it has: {', '.join(rows[0])}")
    out, seen = {}, {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        cells = {k: row[i].strip() if i is not None and i < len(row) else "" for k, i in col.items()}
        name = cells["name"]
        if not name:
            raise BadInput(f"roster {path}, line {n}: no submission name")
        if _same(name) in seen:
            raise BadInput(f"roster {path}, line {n}: {name!r} is on line {seen[_same(name)]} too")
        seen[_same(name)] = n
        out[name] = {"student_id": cells["student_id"], "email": cells["email"]}
    return out


# ---------------------------------------------------------------- the class's summary
STATUS = {"graded": "graded", "unreadable": "unreadable upload: no score",
          "error": "not graded (grader error): no score", "absent": "not submitted"}


def _status(answer):
    if answer.get("fatal"):
        return "unreadable"
    if answer.get("error"):
        return "error"
    unreadable = set(answer.get("unreadable", {}))
    graded = {r["notebook"] for r in answer.get("records", [])}
    if graded and graded <= unreadable:   # every notebook it was graded on could not be read
        return "unreadable"
    return "graded"


def summarize(entries, answers, settings, seconds, roster=None):
    """The class's summary (summary.json).  roster: read_roster's dict, joined by name; its
    people without a submission get a row with status "absent" and no scores."""
    from grader import release
    cols, maxes = _exercise_columns(answers)
    top = sum(maxes.values())
    rows, by_name = [], {}
    for ident, src in entries:
        a = answers.get(ident) or {"records": [], "error": "not graded"}
        status = _status(a)
        pts = {k: 0.0 for k in cols}
        for g in report.exercises(a.get("records", [])):   # an unreadable notebook's: blank
            pts[f"{g['notebook'][:2]} {g['exercise']}"] = None if g["notebook"] in a.get("unreadable", {}) \
                else g["score"]
        name = display_name(src)
        row = {"learner": name, "status": status, "submission": report.clean(str(src)),
               "score": round(sum(v for v in pts.values() if v), 6) if status == "graded" else None,
               "max_score": top, "exercises": pts if status == "graded" else {k: None for k in cols},
               "problems": problems(a), "notes": a.get("notes", []), "seconds": a.get("seconds"),
               "results": f"learners/{ident}/results.json"}
        by_name.setdefault(_same(name), []).append(row)
        rows.append(row)
    for same in by_name.values():   # reported, never renamed: the instructor decides who is who
        if len(same) > 1:
            for r in same:
                others = [o["submission"] for o in same if o is not r]
                r["problems"].append(f"name collision: {r['learner']!r} is also the name of {', '.join(others)}")
    if roster is not None:
        index = {_same(k): v for k, v in roster.items()}
        for r in rows:
            person = index.get(_same(r["learner"]))
            r.update(person or {"student_id": "", "email": ""})
            if person is None:
                r["problems"].append("not on the roster")
        present = {_same(r["learner"]) for r in rows}
        for name, person in roster.items():
            if _same(name) not in present:
                rows.append({"learner": name, **person, "status": "absent", "submission": "", "score": None,
                             "max_score": top, "exercises": {k: None for k in cols}, "problems": [],
                             "notes": [], "seconds": None, "results": ""})
    grader = {k: settings[k] for k in ("seed", "timeout", "submission_timeout", "memory", "only", "jobs")}
    grader.update(release.identity())
    return {"grader": grader,
            "isolation": next((a.get("isolation") for a in answers.values() if a.get("isolation")), None),
            "seconds": round(seconds, 1), "max_score": top, "roster": roster is not None,
            "exercises": [{"exercise": k, "max_score": maxes[k]} for k in cols], "learners": rows}


def csv_cell(text):
    """Text that a spreadsheet shows as text: control characters stripped, and a leading
    = + - @ (a formula) neutralised with an apostrophe."""
    text = " ".join(report.clean(text).split())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _num(x):
    """A number cell; blank (never 0) when there is no score."""
    return "" if x is None else _fmt(x)


SUMMARY_TAIL = ["status", "student_id", "email", "results", "grader_version", "grader_commit", "seed"]


def summary_csv(summary):
    """summary.csv: one row per learner (and per roster entry without a submission).  Scores
    are numbers; a learner without a score (not submitted, unreadable upload, grader error)
    has blank score cells and says why in `status`, never a 0."""
    buf = io.StringIO()
    cols = [e["exercise"] for e in summary["exercises"]]
    g = summary.get("grader", {})
    w = csv.writer(buf)
    w.writerow(["learner", "score", "max_score", *cols, "problems", "submission", "seconds", *SUMMARY_TAIL])
    for r in summary["learners"]:
        ex = r.get("exercises", {})
        w.writerow([csv_cell(r["learner"]), _num(r["score"]), _fmt(r["max_score"]),
                    *[_num(ex.get(c)) for c in cols], csv_cell("; ".join(r["problems"] + r.get("notes", []))),
                    csv_cell(r["submission"]), r["seconds"] if r["seconds"] is not None else "",
                    STATUS.get(r.get("status", "graded"), r.get("status", "")), csv_cell(r.get("student_id", "")),
                    csv_cell(r.get("email", "")), r.get("results", ""), g.get("version", ""), g.get("commit", ""),
                    g.get("seed", "")])
    return buf.getvalue()


GRADEBOOK_ASSIGNMENT = "Dropout, from scratch"


def gradebook_csv(summary, assignment=GRADEBOOK_ASSIGNMENT):
    """gradebook.csv in Canvas's Gradebook import format: Student, ID, SIS User ID, SIS Login
    ID, Section, then the assignment's column; the second row is "Points Possible".  Canvas
    matches rows by SIS User ID (the roster's student_id) or, failing that, by name; a blank
    grade is left unchanged on import (never a 0).  Moodle (Grades > Import > CSV file: map
    "SIS User ID" or "E-mail" to the user field) and Blackboard (Grade Center > Upload) take
    the same file."""
    buf = io.StringIO()
    w = csv.writer(buf)
    title = f"{assignment} ({summary.get('grader', {}).get('version', '')})".replace(" ()", "")
    w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "E-mail", title])
    w.writerow(["Points Possible", "", "", "", "", "", _fmt(summary["max_score"])])
    for r in summary["learners"]:
        w.writerow([csv_cell(r["learner"]), "", csv_cell(r.get("student_id", "")), "", "",
                    csv_cell(r.get("email", "")), _num(r["score"])])
    return buf.getvalue()


def csv_files(summary):
    """{file name: text} of the class's CSV files, written next to summary.json."""
    return {"summary.csv": summary_csv(summary), "gradebook.csv": gradebook_csv(summary)}


def learner_results(answer, visibility=None):
    """Gradescope's results.json for one learner (also when nothing could be graded)."""
    records = answer.get("records", [])
    if records:
        data = report.gradescope(records, answer.get("seconds"), visibility)
    else:
        why = answer.get("fatal") or answer.get("error") or "nothing was graded"
        data = {"score": 0, "tests": [], "output": f"Your submission could not be graded: {why}"}
        if answer.get("error"):   # the grader's failure: no score at all, never a 0
            del data["score"]
    notes = answer.get("notes") or []
    if notes:
        data["output"] = data.get("output", "") + "\n\nAbout your upload:\n" + "\n".join(f"- {n}" for n in notes)
    return data


def overview(summary, out):
    rows = summary["learners"]
    top = summary["max_score"]
    scores = [r["score"] for r in rows if r["score"] is not None]
    lines = [f"results: {out}/summary.csv, {out}/gradebook.csv (for an LMS), {out}/summary.json, "
             f"{out}/learners/<name>/results.json"]
    if scores:
        mean = sum(scores) / len(scores)
        lines.append(f"scores: mean {mean:.1f}/{_fmt(top)}, full marks {sum(s == top for s in scores)}, "
                     f"zero {sum(s == 0 for s in scores)} of {len(scores)}")
    unscored = {}
    for r in rows:
        if r["score"] is None:
            unscored[STATUS.get(r.get("status"), r.get("status"))] = unscored.get(STATUS.get(r.get("status")), 0) + 1
    if unscored:
        lines.append("no score: " + ", ".join(f"{n} {why}" for why, n in unscored.items()))
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
