import sys

from grader.launch import main

sys.exit(main())
