"""The student-notebook generator, step by step, and its command line."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader import generate as g


def test_regions_finds_each_begin_end_pair():
    lines = ["a", "  ### BEGIN SOLUTION", "x", "  ### END SOLUTION", "### BEGIN SOLUTION", "### END SOLUTION"]
    assert g.regions(lines) == [(1, 3), (4, 5)]


@pytest.mark.parametrize("lines, words", [
    (["### BEGIN SOLUTION", "### BEGIN SOLUTION", "### END SOLUTION"], "inside another region"),
    (["### BEGIN SOLUTION", "x"], "no matching"),
    (["x", "### END SOLUTION"], "without a"),
    (["# BEGIN SOLUTION", "x"], "misspelt"),
])
def test_malformed_markers_are_errors_naming_the_line(lines, words):
    with pytest.raises(g.MarkerError, match=words) as e:
        g.regions(lines, "nb.ipynb, cell 3: ")
    assert "nb.ipynb, cell 3: line" in str(e.value)


def test_code_region_becomes_stub_at_the_markers_indent():
    src = "def f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    out = g.replace_regions(src, g.CODE_STUB)
    assert out == "def f(x):\n    \"\"\"Doc.\"\"\"\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    compile(out, "<x>", "exec")


def test_student_cell_clears_outputs_and_metadata_and_leaves_input_alone():
    cell = new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", execution_count=3,
                         outputs=[new_output("stream", name="stdout", text="hi")],
                         metadata={"tags": ["t"], "scrolled": True, "execution": {}})
    out = g.student_cell(cell)
    assert out.outputs == [] and out.execution_count is None
    assert out.metadata == {"tags": ["t"]}
    assert out.source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert cell.outputs and cell.execution_count == 3  # the solution is untouched


def test_markdown_answers_are_replaced():
    cell = new_markdown_cell("Q?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION")
    assert g.student_cell(cell).source == "Q?\nYOUR ANSWER HERE"


def _solution(tmp_path, body="    return 1"):
    nb = new_notebook(cells=[new_markdown_cell("# T"), new_code_cell(
        f"def f():\n    ### BEGIN SOLUTION\n{body}\n    ### END SOLUTION", execution_count=1,
        outputs=[new_output("execute_result", data={"text/plain": "1"}, execution_count=1)])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {"junk": 1}
    path = tmp_path / "solutions" / "01_x.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_cli_writes_refuses_edited_and_forces(tmp_path, capsys):
    src, out = _solution(tmp_path), tmp_path / "out"
    assert g.main([str(src), "--out", str(out)]) == 0
    student = nbformat.read(str(out / "01_x.ipynb"), as_version=4)
    assert "widgets" not in student.metadata and not g.leaks(student, nbformat.read(str(src), 4))
    assert g.main([str(src), "--out", str(out), "--check"]) == 0
    # the learner edits the notebook: regeneration must not overwrite it
    student.cells[1].source = "def f():\n    return 42"
    nbformat.write(student, str(out / "01_x.ipynb"))
    _solution(tmp_path, body="    return 2")
    assert g.main([str(src), "--out", str(out)]) == 1
    assert "edited" in capsys.readouterr().err
    assert "return 42" in (out / "01_x.ipynb").read_text()
    assert g.main([str(src), "--out", str(out), "--check"]) == 1
    assert g.main([str(src), "--out", str(out), "--force"]) == 0
    assert "return 42" not in (out / "01_x.ipynb").read_text()


def test_unedited_output_is_regenerated_without_force(tmp_path):
    src, out = _solution(tmp_path), tmp_path / "out"
    g.main([str(src), "--out", str(out)])
    _solution(tmp_path, body="    return 2")
    src_nb = nbformat.read(str(src), 4)
    src_nb.cells[0].source = "# New title"
    nbformat.write(src_nb, str(src))
    assert g.main([str(src), "--out", str(out)]) == 0
    assert "New title" in (out / "01_x.ipynb").read_text()


def test_malformed_notebook_is_one_line_exit_2(tmp_path, capsys):
    bad = _solution(tmp_path, body="    ### BEGIN SOLUTION\n    return 1")
    assert g.main([str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "01_x.ipynb, cell 2: line" in err
    junk = tmp_path / "junk.ipynb"
    junk.write_text("{not json")
    assert g.main([str(junk), "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_leaks_reports_solution_lines_outputs_and_markers():
    sol = new_notebook(cells=[new_code_cell(
        "def f():\n    ### BEGIN SOLUTION\n    return secret_value * 2\n    ### END SOLUTION")])
    leaky = new_notebook(cells=[new_code_cell("def f():\n    return secret_value * 2", execution_count=1)])
    problems = g.leaks(leaky, sol)
    assert any("solution code" in p for p in problems)
    assert any("outputs" in p for p in problems)
    assert g.leaks(g.student_version(sol, "x"), sol) == []


def test_unknown_option_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        g.main(["--frobnicate"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _with_worked_answer():
    return new_notebook(cells=[
        new_markdown_cell("## Questions\n1. Why?"),
        new_markdown_cell("**1.** Because.", metadata={"tags": ["worked-answer"]}),
        new_code_cell("x = 1", metadata={"tags": ["nbval-check-output"]}),
    ])


def test_worked_answers_become_empty_answer_cells_and_other_tags_kept():
    sol = _with_worked_answer()
    student = g.student_version(sol, "x")
    assert [c.source for c in student.cells] == ["## Questions\n1. Why?", g.ANSWER_PROMPT, "x = 1"]
    assert student.cells[1].cell_type == "markdown" and "tags" not in student.cells[1].metadata
    assert student.cells[2].metadata == {"tags": ["nbval-check-output"]}  # nbval's tag stays
    assert len(sol.cells) == 3  # the solution is untouched
    assert g.leaks(student, sol) == []


def test_one_numbered_answer_line_per_worked_answer_and_stable_ids():
    sol = new_notebook(cells=[new_markdown_cell("## Questions\n1. A?\n2. B?"), new_markdown_cell(
        "### Worked answers\n\n**1.** Because.\n\n**2.** Also because.", metadata={"tags": ["worked-answer"]})])
    first, second = g.student_version(sol, "x"), g.student_version(sol, "x")
    assert first.cells[1].source == "**Your answers:**\n\n**1.** \n\n**2.** "
    assert "Because" not in first.cells[1].source
    assert g.render(first) == g.render(second)  # same ids every run: --check sees no drift
    nbformat.validate(first)


def test_leaks_reports_a_worked_answer_cell():
    sol = _with_worked_answer()
    assert any("worked answer" in p for p in g.leaks(sol, sol))


def test_cli_drops_worked_answers(tmp_path):
    src = _solution(tmp_path)
    nb = nbformat.read(str(src), 4)
    nb.cells.append(new_markdown_cell("The worked answer.", metadata={"tags": ["worked-answer"]}))
    nbformat.write(nb, str(src))
    assert g.main([str(src), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "01_x.ipynb").read_text()
    assert "The worked answer." not in text and "worked-answer" not in text
    assert g.ANSWER_PROMPT in text


def test_no_student_notebook_carries_a_worked_answer():
    for path in sorted((g.ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        tagged = [i for i, c in enumerate(nb.cells, start=1) if g.instructor_only(c)]
        assert tagged == [], f"{path.name}: cells {tagged} are worked answers (solutions only)"
