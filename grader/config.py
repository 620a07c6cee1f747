"""Every default of the grader, in one place, and where the course lives.

The command line, class batches, Gradescope's run_autograder, check() in a notebook and
grader.grade() all build a Config (from these defaults, then their own options) and hand it
to grader.engine.grade.  A test checks that they agree.

The course root is the folder that holds solutions/ and data/.  It is found explicitly,
never from the current directory:
  1. Config(course=...) / --course DIR
  2. the environment variable DROPOUT_COURSE
  3. the checkout the grader package sits in (grader/../solutions exists)
  4. the copy installed with the package (grader/course/, see pyproject.toml)
"""
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

GRADER_DIR = Path(__file__).resolve().parent
COURSE_ENV = "DROPOUT_COURSE"


class CourseNotFound(Exception):
    """No course root (solutions/, data/) could be found; the message says what to do."""


def _is_course(path):
    if path is None:
        return False
    if (GRADER_DIR / "release.json").is_file():   # the student release: data/, no solutions/
        return (Path(path) / "data" / "load.py").is_file()
    return (Path(path) / "solutions").is_dir()


def course_root(explicit=None):
    """The folder holding solutions/ and data/; CourseNotFound says how to point at one."""
    if explicit:
        p = Path(explicit).expanduser().resolve()
        if not _is_course(p):
            raise CourseNotFound(f"{explicit} is not the course folder (it has no solutions/)")
        return p
    env = os.environ.get(COURSE_ENV)
    if env:
        p = Path(env).expanduser().resolve()
        if not _is_course(p):
            raise CourseNotFound(f"{COURSE_ENV}={env} is not the course folder (it has no solutions/)")
        return p
    for candidate in (GRADER_DIR.parent, GRADER_DIR / "course"):
        if _is_course(candidate):
            return candidate
    raise CourseNotFound(f"the course folder was not found: pass --course DIR or set {COURSE_ENV}")


@dataclass(frozen=True)
class Config:
    """How one grading runs.  Times in seconds, memory in MiB."""
    seed: int = 0                   # grading draws: the same submission gets the same score
    timeout: float = 5.0            # wall clock per call into learner code
    submission_timeout: float = 0.0  # wall clock for all of one submission's calls (0: none)
    memory: int = 2048              # address space per learner process
    output: int = 1 << 20           # bytes of printed output per call
    cell_seconds: float = 2.0       # per definition while loading a notebook
    start_seconds: float = 30.0     # loading all notebooks
    nproc: int = 128                # processes (and threads) of a submission at once, as root
    jobs: int = 0                   # parallel processes (0: the number of CPUs)
    only: str | None = None         # exercises or notebooks to grade (comma-separated)
    visibility: str | None = None   # Gradescope visibility of every test without its own
    course: str | None = None       # course root (see course_root); None: found as above
    hide: tuple = field(default_factory=tuple)   # more paths the learner's process must not see
    unsandboxed: bool = False       # self-study only, where the sandbox is missing (native Windows)

    def with_(self, **changes):
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def root(self):
        return course_root(self.course)

    def workers(self):
        return max(1, int(self.jobs or os.cpu_count() or 1))


BATCH_SUBMISSION_TIMEOUT = 120.0     # --out: one submission's budget unless given
GRADESCOPE = dict(memory=512, timeout=10.0, submission_timeout=480.0, jobs=1)
DEFAULT = Config()
