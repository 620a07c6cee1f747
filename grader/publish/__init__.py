"""Where results are published: report.py (the table, -v, Gradescope's results.json, JUnit
XML; learner text cleaned) and classlist.py (a class's summary.csv / summary.json).  Nothing
here grades or imports what grades: Gradescope's runner is grader/gradescope.py."""
