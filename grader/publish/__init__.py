"""Where results are published: report.py (the table, -v, Gradescope's results.json, JUnit
XML; learner text cleaned), classlist.py (a class's summary.csv / summary.json), and
gradescope.py (run_autograder's side: one upload in, results.json out)."""
