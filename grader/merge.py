"""Combine results folders into one class:  python -m grader.merge --out RESULTS DIR...

    python -m grader SUBMISSIONS --out R_1 --shard 1/3     # on machine 1 (and 2/3, 3/3 elsewhere)
    python -m grader.merge --out RESULTS R_1 R_2 R_3

Each DIR is what a batch wrote (or left, when its end failed: the .RESULTS.partial-* folder
its message names).  Nothing is graded again: every learner's answer is read from
DIR/learners/<name>/grading.json, and RESULTS gets the same summary.csv, summary.json and
learners/ that one run over the whole class would write (the timings aside).  The shards must
have been graded with the same settings, cover the class once, and each be complete; if not,
one line says which and exit status is 2.  With a single folder, this finishes a batch whose
summary could not be written (that folder is then removed).
"""
import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from grader import nbfile, resultsdir, signals
from grader.publish import classlist, report


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise nbfile.BadInput(f"{message} (see python -m grader.merge --help)")


def parser():
    p = _Parser(prog="python -m grader.merge", description="Combine the results folders of several "
                "shards (python -m grader ... --shard I/N), or of a batch that could not finish, into "
                "one class's results, without grading again.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results folders written by python -m grader --out")
    p.add_argument("--out", metavar="RESULTS", required=True, help="the folder to write (must not exist)")
    return p


def gather(dirs):
    """(settings, [(id, source)] in the class's order, {id: answer}) from results folders."""
    metas = [(Path(d), resultsdir.load_batch(d)) for d in dirs]
    first_dir, first = metas[0]
    settings = first["settings"]
    placed, answers, shards = {}, {}, set()
    for d, meta in metas:
        for key in resultsdir.SAME:
            if meta["settings"].get(key) != settings.get(key):
                raise nbfile.BadInput(f"{d} was graded with {key.replace('_', '-')} "
                                      f"{meta['settings'].get(key)!r} and {first_dir} with "
                                      f"{settings.get(key)!r}: shards must share their settings")
        if meta.get("class") != first.get("class"):
            raise nbfile.BadInput(f"{d} and {first_dir} were graded from classes of different sizes "
                                  f"({meta.get('class')} and {first.get('class')})")
        shard = tuple(meta["shard"]) if meta.get("shard") else None
        if shard in shards:
            raise nbfile.BadInput(f"{d} is shard {shard[0]}/{shard[1] if shard else ''} again" if shard
                                  else f"{d} is a whole class, given twice")
        shards.add(shard)
        got = resultsdir.load_answers(d)
        missing = [ident for _, ident, _ in meta["entries"] if ident not in got]
        if missing:
            raise nbfile.BadInput(f"{d} lacks the results of {len(missing)} learners ({', '.join(missing[:3])}"
                                  f"{' …' if len(missing) > 3 else ''}): finish it first with --resume")
        for k, ident, src in meta["entries"]:
            if k in placed:
                raise nbfile.BadInput(f"learner {ident} is in two of the folders given")
            placed[k] = (ident, src)
            answers[ident] = got[ident]
    if len(placed) != first.get("class"):
        n = {s[1] for s in shards if s}
        absent = sorted({i for total in n for i in range(1, total + 1)} - {s[0] for s in shards if s})
        raise nbfile.BadInput(f"these folders hold {len(placed)} of the class's {first.get('class')} learners"
                              + (f": shard {', '.join(f'{i}/{max(n)}' for i in absent)} is missing" if absent else ""))
    return settings, [placed[k] for k in sorted(placed)], answers


def merge(dirs, out):
    """Write out (a new folder) from the results folders dirs; the summary."""
    settings, entries, answers = gather(dirs)
    roster = resultsdir.load_batch(dirs[0]).get("roster")   # every shard was given the same --roster
    seconds = sum(a.get("seconds") or 0 for a in answers.values())
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        resultsdir.claim(folder)
        resultsdir.save_batch(folder, {"settings": settings, "shard": None, "class": len(entries),
                                       "entries": [[k, i, s] for k, (i, s) in enumerate(entries)],
                                       "roster": roster, "paths": []})
        for ident, _ in entries:
            resultsdir.save_answer(folder, ident, answers[ident], settings.get("visibility"))
        summary = resultsdir.write_summary(folder, entries, answers, settings, seconds, roster)
        where = resultsdir.publish(folder, out)
    except BaseException:
        signals.ignore()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return summary, where


def main(argv=None):
    signals.catch()
    try:
        a = parser().parse_args(argv)
        out = Path(os.path.abspath(a.out))
        if os.path.lexists(out):
            raise nbfile.BadInput(f"{out} already exists: choose a new folder for the merged results")
        if not out.parent.is_dir():
            raise nbfile.BadInput(f"cannot write {out}: folder {out.parent} does not exist")
        summary, where = merge(a.dirs, out)
    except nbfile.BadInput as e:
        print(f"grader.merge: {report.clean(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("grader.merge: interrupted; nothing was written", file=sys.stderr)
        return signals.status(e)
    except OSError as e:
        print(f"grader.merge: cannot write {a.out}: {e.strerror}; nothing was written (the folders "
              "given are untouched)", file=sys.stderr)
        return 3
    for d in map(Path, a.dirs):   # a batch's unfinished folder, now finished: not left behind
        if d.name.startswith(".") and ".partial-" in d.name and not resultsdir.owner_alive(d):
            shutil.rmtree(d, ignore_errors=True)
            print(f"removed {d} (its results are in {where})")
    print(classlist.overview(summary, where))
    print(f"merged {len(summary['learners'])} learners from {len(a.dirs)} folder{'s' if len(a.dirs) != 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
