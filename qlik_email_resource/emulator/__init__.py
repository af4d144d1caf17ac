"""A local Qlik Cloud tenant emulator with a real SMTP server behind it.

``from qlik_email_resource.emulator import Emulator``; see docs/emulator.md.
"""

from .server import Emulator, TenantInfo

__all__ = ["Emulator", "TenantInfo"]
