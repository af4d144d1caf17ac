import sys

from qlik_email_resource.fleet.cli import main

if __name__ == "__main__":
    sys.exit(main())
