"""Build-time check: every gpuwatchd module and vendored binding imports from the package tree.

Usage: python3 debian/smoke_import.py PRIVATE_DIR VENDOR_DIR (called from debian/rules).
"""

import importlib
import os
import pkgutil
import sys

private, vendor = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path[0:0] = [private, vendor]
import gpuwatchd  # noqa: E402

names = [m.name for m in pkgutil.walk_packages(gpuwatchd.__path__, "gpuwatchd.")
         if not m.name.endswith(".__main__")]  # importing __main__ would run the daemon
for name in names + ["pynvml", "pyipmi", "pyipmi.interfaces.rmcpplus", "redfish", "jsonpath_ng"]:
    importlib.import_module(name)
wrong = [m for m in ("gpuwatchd", "pyipmi", "pynvml", "redfish")
         if not (sys.modules[m].__file__ or "").startswith(private)]
if wrong:
    sys.exit(f"smoke_import: imported from outside {private}: {wrong}")
print(f"smoke_import: {len(names)} gpuwatchd modules and 4 vendored bindings import")
