"""Learner text is bounded and cleaned once, where it enters the grader, for every output:
the terminal, JSON, CSV and JUnit XML (14.8, 14.14)."""
import json
import xml.etree.ElementTree as ET

import pytest

from grader import text
from grader.publish import report
from grader.sandbox.host import LearnerError
from tests.grading import notebook, run_grader, solution_cells

HOSTILE = "\uffff\ufffe\x00\x07\x1b[2J\x1b]0;title\x07\u202e\ud800\U000f0000\x9b31m\r"


def test_clean_leaves_nothing_a_terminal_or_xml_reader_chokes_on():
    out = text.clean("ok " + HOSTILE + " ok\n\tnext")
    assert out == "ok  ok\n\tnext"
    ET.fromstring(f"<a>{out}</a>")   # every character XML 1.0 allows


def test_every_learner_string_is_bounded_where_it_enters():
    big = "N" * 2**21
    e = LearnerError(big, big, big + HOSTILE)
    assert len(e.kind) <= text.MAX_NAME and len(e.function) <= text.MAX_NAME
    assert len(e.message) <= text.MAX_MESSAGE and str(e) == e.message
    assert "\uffff" not in e.message
    e = LearnerError("raised", "f", "short " + HOSTILE)
    assert e.message == "short " and e.kind == "raised"


class Odd(str):
    def __str__(self):
        raise RuntimeError("no")


@pytest.mark.parametrize("value", [Odd("x"), 3, None, b"\xff", object()])
def test_anything_becomes_text(value):
    assert isinstance(text.message(value), str) and isinstance(text.name(value), str)


def test_the_cleaning_is_still_there_for_the_report_callers():
    assert report.clean is text.clean


RAISES = '''
def bernoulli_mask(shape, p, rng=None):
    raise type("{name}", (Exception,), {{}})("{msg}")
'''


def test_a_huge_hostile_exception_gives_bounded_readable_reports(tmp_path):
    """14.8: a 2 MiB exception class name made a 16 MB results.json; 14.14: U+FFFF in a
    message made the JUnit XML unreadable.  By outcome: both files stay small and parse, and
    nothing of the hostile characters reaches any of them or the terminal."""
    msg = HOSTILE.encode("unicode_escape").decode().replace('"', '\\"')
    src = RAISES.format(name="E" * 2**21, msg=msg)
    nb = notebook(tmp_path / "01_bernoulli_mask.ipynb", solution_cells("01_bernoulli_mask") + [src])
    out, xml = tmp_path / "r.json", tmp_path / "j.xml"
    proc = run_grader([nb, "--json", out, "--junitxml", xml, "-v"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["score"] == 0 and data["tests"]
    assert out.stat().st_size < 2**20, out.stat().st_size   # was 16 MB
    junit = ET.parse(xml).getroot()
    texts = [json.dumps(data, ensure_ascii=False), proc.stdout, proc.stderr]
    texts += [el.text or "" for el in junit.iter()] + [v for el in junit.iter() for v in el.attrib.values()]
    for where in texts:
        assert not any(c in where for c in "\uffff\ufffe\x00\x07\x1b\u202e\x9b\r\ud800"), where[:300]
    assert "E" * 100 in json.dumps(data)   # the name is shown, cut


def test_control_codes_in_file_names_never_reach_the_overview(tmp_path):
    """14.14: a learner's file name with terminal escapes is named in the batch overview on
    the instructor's terminal, in summary.csv and in the learner's results: cleaned."""
    subs = tmp_path / "class"
    subs.mkdir()
    evil = "evil\x1b[2J\x1b]0;owned\x07\u202e\uffff"
    (subs / f"{evil}.zip").write_bytes(b"not a zip")
    proc = run_grader([subs, "--out", tmp_path / "out", "--only", "01"])
    assert "unreadable submission" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    written = [p.read_text(encoding="utf-8") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    written += [json.dumps(json.loads(p.read_text()), ensure_ascii=False)
                for p in (tmp_path / "out").rglob("*.json")]
    for where in [proc.stdout, proc.stderr, *written]:
        assert not any(c in where for c in "\x1b\x07\u202e\uffff"), where[:300]
