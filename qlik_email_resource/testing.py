"""The offline runner under its first name: ``qlik_email_resource.offline`` is its home.

Kept so that users' code written against the first name goes on working:
``from qlik_email_resource.testing import OfflineStack``, its submodules
(``qlik_email_resource.testing.grpc_servers``, ``.runner``, ...) and
``python -m qlik_email_resource.testing``. The submodules are the same module
objects as under ``offline``, so classes and isinstance checks agree.
"""

import importlib
import pkgutil
import sys

from qlik_email_resource import offline as _offline
from qlik_email_resource.offline import *  # noqa: F403  (the same public names)

__all__ = list(_offline.__all__)

for _submodule in pkgutil.iter_modules(_offline.__path__):
    if _submodule.name != "__main__":
        sys.modules[f"qlik_email_resource.testing.{_submodule.name}"] = importlib.import_module(
            f"qlik_email_resource.offline.{_submodule.name}"
        )

if __name__ == "__main__":
    from qlik_email_resource.offline.__main__ import main

    sys.exit(main())
