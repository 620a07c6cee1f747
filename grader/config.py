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
import math
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


# The smallest limits a correct submission can be graded under, with room to spare.  Measured
# by grading solutions/ (135 points) on a loaded 2-core machine: --memory 128 loses 5 points,
# 160 gets them all; --timeout 0.25 loses 10, 0.5 gets them all; all seven notebooks take
# 6.6 s, notebook 01 alone 1.5 s.  Lower values are refused (python -m grader says so and exits 2);
# before a class is graded, the reference solutions are graded once under the limits chosen,
# which catches what these floors cannot (a --submission-timeout too short for seven notebooks).
MIN_MEMORY = 256            # MiB
MIN_TIMEOUT = 1.0           # s, per call into learner code
MIN_SUBMISSION_TIMEOUT = 5.0   # s, all of one submission's calls (0: no limit)


class BadSetting(ValueError):
    """A setting no grading can use; the message is one line naming the option."""


def validate(config):
    """BadSetting unless every limit of config lets a correct submission pass."""
    if config.seed < 0:
        raise BadSetting(f"--seed must be 0 or more (got {config.seed})")
    if not config.memory >= MIN_MEMORY:
        raise BadSetting(f"--memory must be at least {MIN_MEMORY} MiB: a correct submission "
                         f"needs about 160 (got {config.memory})")
    if not config.timeout >= MIN_TIMEOUT:
        raise BadSetting(f"--timeout must be at least {MIN_TIMEOUT:g} s: a correct submission's "
                         f"slowest call needs about 0.5 (got {config.timeout:g})")
    if config.submission_timeout != 0 and not config.submission_timeout >= MIN_SUBMISSION_TIMEOUT:
        raise BadSetting(f"--submission-timeout must be at least {MIN_SUBMISSION_TIMEOUT:g} s, or 0 "
                         f"for no limit (got {config.submission_timeout:g})")
    if config.jobs < 0 or config.jobs != int(config.jobs):
        raise BadSetting(f"--jobs must be at least 1 (got {config.jobs})")
    for name in ("timeout", "submission_timeout"):
        if not math.isfinite(getattr(config, name)):
            raise BadSetting(f"--{name.replace('_', '-')} must be a number of seconds")
    return config


BATCH_SUBMISSION_TIMEOUT = 120.0     # --out: one submission's budget unless given
GRADESCOPE = dict(memory=512, timeout=10.0, submission_timeout=480.0, jobs=1)
DEFAULT = Config()
