"""One config holds every default: the command line, a class batch, Gradescope, check() and
grader.grade() agree on them, and the sandbox's limits come from the same place."""
from dataclasses import asdict

import pytest

from grader import cli, gradescope
from grader.config import (
    BATCH_SUBMISSION_TIMEOUT,
    DEFAULT,
    GRADESCOPE,
    MIN_MEMORY,
    MIN_SUBMISSION_TIMEOUT,
    MIN_TIMEOUT,
    BadSetting,
    Config,
    course_root,
    validate,
)
from grader.sandbox.host import Limits


def test_the_command_line_adds_no_defaults_of_its_own():
    a = cli.parser().parse_args(["notebooks/"])
    assert cli.config_from(a) == DEFAULT
    a = cli.parser().parse_args(["notebooks/", "--seed", "7", "--memory", "512"])
    assert cli.config_from(a) == DEFAULT.with_(seed=7, memory=512)
    text = " ".join(cli.parser().format_help().split())
    assert f"default {DEFAULT.timeout:g}" in text and f"default {DEFAULT.memory}" in text
    assert f"{BATCH_SUBMISSION_TIMEOUT:g} with --out" in text


def test_the_sandbox_limits_are_the_configs():
    lim, cfg = Limits(), DEFAULT
    assert (lim.seconds, lim.mem, lim.output, lim.cell_seconds, lim.nproc) == \
        (cfg.timeout, cfg.memory << 20, cfg.output, cfg.cell_seconds, cfg.nproc)
    assert Limits.of(DEFAULT) == Limits()


def test_gradescope_defaults_are_the_configs_gradescope_settings():
    for key, value in GRADESCOPE.items():
        assert gradescope.DEFAULTS[key] == value
    assert gradescope.DEFAULTS["seed"] == DEFAULT.seed
    assert set(GRADESCOPE) <= set(asdict(DEFAULT))


def test_check_and_grade_pass_no_defaults_of_their_own():
    import inspect

    from grader import inline
    src = inspect.getsource(inline.grade) + inspect.getsource(inline.check)
    for flag in ("--timeout", "--memory", "--submission-timeout"):
        assert flag not in src
    assert "seed=None" in inspect.getsource(inline.grade)


def test_the_course_is_found_explicitly(tmp_path, monkeypatch):
    assert (course_root() / "solutions").is_dir()
    monkeypatch.setenv("DROPOUT_COURSE", str(tmp_path))
    import pytest

    from grader.config import CourseNotFound
    with pytest.raises(CourseNotFound, match="DROPOUT_COURSE"):
        course_root()
    (tmp_path / "solutions").mkdir()
    assert course_root() == tmp_path.resolve()
    assert Config(course=str(tmp_path)).root() == tmp_path.resolve()


def test_the_gradescope_packager_defaults_are_the_configs():
    from grader import package
    a = package.parser().parse_args(["gradescope", "out.zip"])
    actions = vars(a)
    assert actions["seed"] == DEFAULT.seed
    for key in ("timeout", "submission_timeout", "memory", "jobs"):
        assert actions[key] == GRADESCOPE[key], key


def test_every_default_passes_the_checks_every_option_gets():
    """The defaults, Gradescope's and a batch's pass validate(); the minimums are refused just
    below (measured: the reference solutions need about 160 MiB and 0.5 s)."""
    for cfg in (DEFAULT, DEFAULT.with_(**GRADESCOPE), DEFAULT.with_(submission_timeout=BATCH_SUBMISSION_TIMEOUT)):
        assert validate(cfg) is cfg
    assert validate(DEFAULT.with_(memory=MIN_MEMORY, timeout=MIN_TIMEOUT, submission_timeout=MIN_SUBMISSION_TIMEOUT))
    for bad in (dict(memory=MIN_MEMORY - 1), dict(timeout=MIN_TIMEOUT / 2), dict(seed=-1),
                dict(submission_timeout=MIN_SUBMISSION_TIMEOUT / 2), dict(timeout=float("inf"))):
        with pytest.raises(BadSetting):
            validate(DEFAULT.with_(**bad))
