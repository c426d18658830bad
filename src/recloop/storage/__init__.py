"""Every byte recloop writes for data: the event log and the model snapshots.

``open_log(url)`` opens an ``EventLog`` (SQLite embedded by default, Redis Streams for
scale-out); ``GroupCommitter`` shares one commit among concurrent appends; ``ModelStore``
keeps versioned, atomic snapshots that record the log offset they include.
"""

from recloop.storage.commit import GroupCommitter
from recloop.storage.log import DURABILITIES, Durability, EventLog, LogInfo, open_log, register
from recloop.storage.snapshots import ModelStore, SnapshotInfo

__all__ = [
    "DURABILITIES",
    "Durability",
    "EventLog",
    "GroupCommitter",
    "LogInfo",
    "ModelStore",
    "SnapshotInfo",
    "open_log",
    "register",
]
