import sys

from qlik_email_resource.fleet.cli import main

sys.exit(main())
