"""Maps the three code folders onto the ``sluicegate`` namespace.

The repository keeps ``driver/``, ``worker/`` and ``common/`` at the top level;
they install as ``sluicegate.driver``, ``sluicegate.worker`` and
``sluicegate.common`` (never as top-level packages).
"""
from setuptools import find_packages, setup

FOLDERS = {"driver": "sluicegate.driver", "worker": "sluicegate.worker", "common": "sluicegate.common"}

packages, package_dir = [], {}
for folder, name in FOLDERS.items():
    package_dir[name] = folder
    packages.append(name)
    packages.extend(f"{name}.{sub}" for sub in find_packages(folder))

setup(packages=packages, package_dir=package_dir)
