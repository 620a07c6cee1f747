"""Grade a whole class:  python -m grader SUBMISSIONS --out RESULTS [--jobs N] [--shard I/N]

SUBMISSIONS is a folder with one subfolder or one .zip file per learner (the subfolder or
zip name is the learner's name), or a single learner's submission.  A learner's notebooks
are found by name (01_*.ipynb, ...) anywhere inside their folder or zip (grader/uploads.py).

RESULTS must not exist (or use --replace, which moves the old folder aside; nothing is
ever deleted).  Everything is written into a private folder next to it and renamed to
RESULTS at the end (grader/resultsdir.py):

    RESULTS/summary.csv                     one row per learner: points per exercise, total, problems
    RESULTS/summary.json                    the same, with the grading settings
    RESULTS/learners/<name>/results.json    Gradescope's format, for each learner
    RESULTS/learners/<name>/grading.json    the records behind it (what merge and --resume read)
    RESULTS/batch.json                      the settings and the class, for merge and --resume

Each learner's files are written as soon as their grading ends, so a failure at the end
(a full disk) loses at most the summary; the message says how to finish.  Before the class,
the reference solutions are graded once under the limits chosen: unless they get full marks,
the batch is refused with the reason.  A learner the grader fails on (its worker died twice,
grading hung) gets no score, a status saying so, and exit status 4 with the command that
grades them again (--resume).  --shard I/N grades a deterministic share of the class;
python -m grader.merge combines the shares.

Submissions are graded in parallel by long-lived worker processes (grader/workers.py; --jobs,
default the number of CPUs), each calling grader.engine.grade for one submission at a time; as root,
each worker's learner code runs as a uid of its own.  One bad submission (unreadable, hostile,
too slow) costs only its own row.  The process tree is drawn in grader/engine.py.
"""
import os
import shlex
import shutil
import sys
import tempfile
import time
from argparse import Namespace
from dataclasses import asdict
from pathlib import Path

from grader import engine, nbfile, resultsdir, signals, uploads, workers
from grader.config import BATCH_SUBMISSION_TIMEOUT
from grader.publish import classlist, report
from grader.sandbox.host import exposure_refusal

BATCH_OPTIONS = dict(resume=False, shard=None, replace=False, no_reference_check=False, visibility=None,
                     json=None, junitxml=None, submission_timeout=None)   # defaults for callers' Namespaces


# ---------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar, drawn only when stdout is a terminal."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.problems = total, 0, 0
        self.stream = stream or sys.stdout
        self.on = self.stream.isatty()
        self.t0 = time.monotonic()
        self.last = 0

    def update(self, done=None, problem=False, force=False):
        if done:
            self.done += 1
            self.problems += bool(problem)
        now = time.monotonic()
        if not self.on or (not force and not done and now - self.last < 0.5):
            return
        self.last = now
        width = 30
        full = int(width * self.done / max(1, self.total))
        bar = "█" * full + "░" * (width - full)
        extra = f" · {self.problems} with problems" if self.problems else ""
        self.stream.write(f"\r{bar} {self.done}/{self.total} graded{extra} · {now - self.t0:.0f} s ")
        self.stream.flush()

    def finish(self):
        if self.on:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


# ---------------------------------------------------------------- the batch
def check_out(out, replace, resume=False):
    out = Path(out)
    if os.path.lexists(out) and not (replace or resume):
        raise nbfile.BadInput(f"{out} already exists: choose a new folder for the results, add "
                              "--resume to continue it, or --replace to move it aside")
    if not out.parent.is_dir():
        raise nbfile.BadInput(f"cannot write results into {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise nbfile.BadInput(f"cannot write results into {out}: folder {out.parent} is not writable")
    return out


def parse_shard(text):
    """'I/N' -> (I, N), 1 <= I <= N; BadInput otherwise."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise nbfile.BadInput(f"--shard must be I/N, e.g. 2/5 (got {text!r})") from None
    if not 1 <= i <= n:
        raise nbfile.BadInput(f"--shard {text}: I must be between 1 and N")
    return i, n


def share(everyone, shard):
    """[(place in the class, id, source)] this run grades: all, or every N-th from the I-th.
    Learners' ids are made from the whole class, so a shard names them as one run would."""
    return [(k, ident, str(src)) for k, (ident, src) in enumerate(everyone)
            if shard is None or k % shard[1] == shard[0] - 1]


def settings_of(config, jobs):
    return {"seed": config.seed, "timeout": config.timeout, "memory": config.memory,
            "only": config.only, "submission_timeout": config.submission_timeout,
            "visibility": config.visibility, "jobs": jobs, "config": asdict(config)}


def _same_settings(meta, settings, shard, where):
    old = meta.get("settings", {})
    for key in resultsdir.SAME:
        if old.get(key) != settings.get(key):
            raise nbfile.BadInput(f"{where} was graded with {key.replace('_', '-')} {old.get(key)!r}, "
                                  f"not {settings.get(key)!r}: resume with the same options")
    if (meta.get("shard") or None) != (list(shard) if shard else None):
        raise nbfile.BadInput(f"{where} holds shard {meta.get('shard')}: resume with the same --shard")


def prepare(out, a, settings, mine, shard, class_size, roster=None):
    """The folder to write into, whether it is `out` itself, and the answers already there."""
    if a.resume:
        if out.is_dir() and (out / "batch.json").exists():
            folder, in_place = out, True
        else:
            stopped = [p for p in resultsdir.partials(out) if not resultsdir.owner_alive(p)
                       and (p / "batch.json").exists()]
            if not stopped:
                raise nbfile.BadInput(f"nothing to resume: {out} holds no results and no stopped run "
                                      "left any beside it")
            folder, in_place = stopped[0], False
        _same_settings(resultsdir.load_batch(folder), settings, shard, folder)
        kept = {k: v for k, v in resultsdir.load_answers(folder).items() if not resultsdir.grader_failed(v)}
    else:
        check_out(out, a.replace)
        try:
            folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        except OSError as e:
            raise nbfile.BadInput(f"cannot write results next to {out}: {e.strerror}") from None
        in_place, kept = False, {}
    resultsdir.claim(folder)
    resultsdir.save_batch(folder, {"settings": settings, "shard": list(shard) if shard else None,
                                   "class": class_size, "entries": mine, "roster": roster,
                                   "paths": [os.path.abspath(p) for p in a.paths]})
    return folder, in_place, kept


class Saver:
    """Writes each learner's files as their answer arrives; a write that fails (a full disk)
    is remembered and tried again at the end, grading goes on."""

    def __init__(self, folder, visibility):
        self.folder, self.visibility = folder, visibility
        self.unsaved, self.error = {}, None

    def __call__(self, ident, answer):
        try:
            resultsdir.save_answer(self.folder, ident, answer, self.visibility)
            self.unsaved.pop(ident, None)
        except OSError as e:
            self.unsaved[ident], self.error = answer, e

    def retry(self):
        for ident, answer in list(self.unsaved.items()):
            self(ident, answer)
        if self.unsaved:
            raise self.error


def _command(a, out, extra):
    """The command line that continues this batch."""
    words = ["python", "-m", "grader", *[str(p) for p in a.paths], "--out", str(out)]
    for flag in ("only", "seed", "timeout", "submission_timeout", "memory", "jobs", "shard", "visibility", "course"):
        value = getattr(a, flag, None)
        if value is not None:
            words += [f"--{flag.replace('_', '-')}", str(value)]
    return shlex.join(words + extra)


def added_meanwhile(a, stems, everyone):
    """Submissions that appeared while the class was graded (not graded: said so)."""
    try:
        now = uploads.discover([os.path.abspath(p) for p in a.paths], stems)
    except nbfile.BadInput:
        return []
    known = {str(src) for _, src in everyone}
    return [Path(src).name for _, src in now if str(src) not in known]


def main(a, config):
    """python -m grader PATH... --out DIR (a: parsed arguments of grader.cli; config: the
    grader.config.Config they give, already validated).  Every path is made absolute here,
    before any worker starts: the workers run in a folder of their own."""
    t0 = time.monotonic()
    a = Namespace(**{**BATCH_OPTIONS, **vars(a)})
    stems = engine.course_stems()
    if a.submission_timeout is None:
        config = config.with_(submission_timeout=BATCH_SUBMISSION_TIMEOUT)
    config = config.with_(course=str(config.root()))
    jobs = config.workers()
    settings = settings_of(config, jobs)
    try:
        if a.junitxml or a.json:
            raise nbfile.BadInput("--json and --junitxml are for one learner; with --out each "
                                  "learner's results.json is written into the results folder")
        shard = parse_shard(a.shard)
        roster = classlist.read_roster(getattr(a, "roster", None))
        everyone = uploads.discover([os.path.abspath(p) for p in a.paths], stems)
        mine = share(everyone, shard)
        if not mine:
            raise nbfile.BadInput(f"--shard {a.shard}: a class of {len(everyone)} has no share {a.shard}")
        out = Path(os.path.abspath(a.out))
        refusal = exposure_refusal([config.root(), *[os.path.abspath(p) for p in a.paths]])
        if refusal:   # no view here: learner code would see what its uid can read
            raise nbfile.BadInput(f"refused to grade others' work: {refusal}")
        swept = resultsdir.sweep(out)
        folder, in_place, kept = prepare(out, a, settings, mine, shard, len(everyone), roster)
    except nbfile.BadInput as e:
        print(f"grader: {report.clean(e)}", file=sys.stderr)
        return 2
    for line in swept:
        if not (a.resume and "--resume" in line):
            print(line)
    if kept:
        print(f"resuming: {len(kept)} learners already graded in {folder} are kept")
    todo = [(ident, src) for _, ident, src in mine if ident not in kept]
    hide = [str(folder), str(out)] + [str(Path(p).resolve()) for p in a.paths]
    progress = Progress(len(todo))
    saver = Saver(folder, a.visibility)
    answers = dict(kept)
    try:
        answers.update(workers.run_batch(todo, jobs, settings, progress, hide=hide, on_answer=saver,
                                 reference=None if a.no_reference_check else Path(config.root()) / "solutions"))
        progress.finish()
        saver.retry()
        entries = [(ident, src) for _, ident, src in mine]
        summary = resultsdir.write_summary(folder, entries, answers, settings, time.monotonic() - t0, roster)
        if in_place:
            (folder / resultsdir.OWNER).unlink(missing_ok=True)
            resultsdir.open_up(folder)
        else:
            if os.path.lexists(out) and a.replace:
                aside = out.with_name(f"{out.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
                resultsdir.rename_noreplace(out, aside)
                print(f"moved the old {out} to {aside}")
            where = resultsdir.publish(folder, out)
            if where != out:
                print(f"grader: {out} appeared while grading; the results are in {where}", file=sys.stderr)
            out = where
    except workers.Refused as e:
        progress.finish()
        _discard(folder, in_place, a.resume)
        print(f"grader: refused to grade: the reference solutions must get full marks under the limits "
              f"chosen, and {report.clean(e)}; raise --timeout, --memory or --submission-timeout",
              file=sys.stderr)
        return 2
    except workers.GraderBroken as e:
        progress.finish()
        _discard(folder, in_place, a.resume)
        print(f"grader: {report.clean(e)}; nothing was graded and nothing written", file=sys.stderr)
        return 3
    except KeyboardInterrupt as e:
        signals.ignore()
        progress.finish()
        if a.resume:
            print(f"grader: interrupted; the results so far are kept in {folder}: add --resume again "
                  "to finish", file=sys.stderr)
        else:
            _discard(folder, in_place, False)
            print("grader: interrupted; nothing was written", file=sys.stderr)
        return signals.status(e)
    except Exception as e:  # noqa: BLE001 - a full disk, a read-only folder, a grader bug
        signals.ignore()
        progress.finish()
        return _unfinished(a, e, folder, out, mine, answers, saver)
    print(classlist.overview(summary, out))
    warn = classlist.exposure_warning(summary.get("isolation"), [*a.paths, config.root() / "solutions"])
    if warn:
        print(warn)
    late = added_meanwhile(a, stems, everyone)
    if late:
        print(f"note: {len(late)} submission{'s' if len(late) != 1 else ''} appeared while grading and "
              f"{'were' if len(late) != 1 else 'was'} skipped: {', '.join(late[:10])}"
              f"{' …' if len(late) > 10 else ''} (grade them with another --out folder)")
    print(f"graded {len(todo)} submissions in {time.monotonic() - t0:.1f} s with {jobs} "
          f"parallel job{'s' if jobs != 1 else ''}")
    failed = [ident for ident, _ in todo if resultsdir.grader_failed(answers.get(ident, {}))]
    if failed:
        print(f"grader: {len(failed)} learner{'s were' if len(failed) != 1 else ' was'} not graded for the "
              f"grader's reasons ({', '.join(failed[:5])}{' …' if len(failed) > 5 else ''}; their rows have "
              f"no score): grade them again with: {_command(a, out, ['--resume'])}", file=sys.stderr)
        return 4
    return 0


def _discard(folder, in_place, resume):
    """Remove what this run made, unless it holds results from before (a resumed folder)."""
    if not in_place and not resume:
        shutil.rmtree(folder, ignore_errors=True)


def _unfinished(a, e, folder, out, mine, answers, saver):
    """The end failed: keep every learner's results written so far, and say how to finish."""
    why = e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"
    saved = len(resultsdir.graded_in(folder))
    head = f"grader: could not finish the results ({why}); "
    if saved == 0:
        _discard(folder, False, a.resume)
        print(head + "nothing was kept: " + ("please report it" if not isinstance(e, OSError)
              else "make room and run the same command again"), file=sys.stderr)
        return 3
    if saved >= len(mine):
        finish = (shlex.join(["python", "-m", "grader.merge", "--out", str(out), str(folder)]) if folder != out
                  else _command(a, out, ["--resume"]))
        print(head + f"every learner's results ({saved}) are kept in {folder}; when there is room, "
              f"write the summary (no grading again) with: {finish}", file=sys.stderr)
    else:
        print(head + f"{saved} of {len(mine)} learners' results are kept in {folder}; when there is "
              f"room, finish (grading only the others) with: {_command(a, out, ['--resume'])}",
              file=sys.stderr)
    return 3


if __name__ == "__main__":
    print("usage: python -m grader SUBMISSIONS --out RESULTS (see python -m grader --help)", file=sys.stderr)
    sys.exit(2)
