"""Everything that executes: executor processes, shuffle, block storage.

Imports ``sluicegate.common`` only, never ``sluicegate.driver``.
"""
