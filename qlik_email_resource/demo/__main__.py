"""`make demo` runs `python -m qlik_email_resource.demo`."""

import sys

from qlik_email_resource.demo.cli import main

sys.exit(main())
