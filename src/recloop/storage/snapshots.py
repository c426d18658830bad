"""``ModelStore``: versioned model snapshots in one folder, written atomically.

Each snapshot is a folder ``snap-<log offset>-<ns>/`` holding ``model/`` (whatever the
save function wrote there) and ``manifest.json``: the store's format version, the
model version, the log offset the snapshot includes (every event up to it and none
after), and a SHA-256 over the model's files. It is written under a temporary name,
fsynced, and renamed into place, so a crash leaves either the whole snapshot or a
temporary folder that the next open removes. ``latest()`` returns the newest snapshot
whose manifest and checksum hold, skipping (with one warning each) any that do not.
The newest ``keep`` snapshots are kept.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> def save(folder: Path) -> dict[str, int]:
...     folder.mkdir()
...     (folder / "weights.bin").write_bytes(b"0123")
...     return {"model_version": 1, "log_offset": 42}
>>> with tempfile.TemporaryDirectory() as d:
...     store = ModelStore(Path(d), keep=2)
...     _ = store.write(save)
...     snap = store.latest()
>>> snap.log_offset, snap.model_version, snap.path.name
(42, 1, 'model')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from recloop.errors import ConfigError, StorageError

log = logging.getLogger(__name__)
STORE_FORMAT = 1
MANIFEST = "manifest.json"
_PREFIX = "snap-"
_TMP = ".tmp-"


@dataclass(frozen=True)
class SnapshotInfo:
    """One valid snapshot: ``path`` is its model folder (what the save function wrote)."""

    folder: Path
    path: Path
    format: int
    model_version: int
    log_offset: int
    checksum: str
    created: float


def _checksum(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _fsync_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*"), reverse=True):
        _fsync(p)
    _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelStore:
    """Versioned, atomic model snapshots under ``root``; the newest ``keep`` are kept."""

    def __init__(self, root: str | Path, keep: int = 3) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ConfigError(f"snapshot_keep: must be an integer >= 1, got {keep!r}")
        self.root = Path(root)
        self.keep = keep
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{_TMP}probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError as exc:
            raise StorageError(
                f"snapshots: cannot write to {str(self.root)!r}: {exc.strerror or exc}"
            ) from None
        for stale in self.root.glob(_TMP + "*"):  # what a crash left half-written
            shutil.rmtree(stale, ignore_errors=True)

    def folders(self) -> list[Path]:
        """Every snapshot folder, newest first (by log offset, then time written)."""
        return sorted(
            (p for p in self.root.glob(_PREFIX + "*") if p.is_dir()),
            key=lambda p: p.name,
            reverse=True,
        )

    def write(self, save: Callable[[Path], Mapping[str, int]]) -> SnapshotInfo:
        """Write a snapshot: ``save(model_folder)`` writes the model into a folder that does
        not exist yet and returns its ``model_version`` and ``log_offset``."""
        tmp = self.root / f"{_TMP}{time.time_ns()}"
        try:
            tmp.mkdir()
            meta = dict(save(tmp / "model"))
            checksum = _checksum(tmp / "model")
            offset = int(meta.get("log_offset", 0))
            manifest = {
                "format": STORE_FORMAT,
                "model_version": int(meta.get("model_version", 0)),
                "log_offset": offset,
                "checksum": "sha256:" + checksum,
                "created": time.time(),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            _fsync_tree(tmp)
            final = self.root / f"{_PREFIX}{offset:015d}-{time.time_ns()}"
            tmp.rename(final)
            _fsync(self.root)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StorageError(
                f"snapshots: cannot write a snapshot in {str(self.root)!r}: {exc.strerror or exc}"
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.prune()
        return self._info(final, manifest)

    @staticmethod
    def _info(folder: Path, manifest: Mapping[str, object]) -> SnapshotInfo:
        return SnapshotInfo(
            folder=folder,
            path=folder / "model",
            format=int(str(manifest["format"])),
            model_version=int(str(manifest["model_version"])),
            log_offset=int(str(manifest["log_offset"])),
            checksum=str(manifest["checksum"]),
            created=float(str(manifest["created"])),
        )

    def manifest(self, folder: Path) -> SnapshotInfo:
        """The snapshot's manifest, read without checking its files (``StorageError`` if
        it is missing, unreadable or of another format)."""
        try:
            data = json.loads((folder / MANIFEST).read_text())
            info = self._info(folder, data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"snapshot {folder.name}: no readable manifest ({exc})") from None
        if info.format != STORE_FORMAT:
            raise StorageError(
                f"snapshot {folder.name}: format {info.format}, this version reads {STORE_FORMAT}"
            )
        return info

    def verify(self, folder: Path) -> SnapshotInfo:
        """The snapshot's manifest once its checksum matches its files (else ``StorageError``)."""
        info = self.manifest(folder)
        try:
            actual = "sha256:" + _checksum(info.path)
        except OSError as exc:
            raise StorageError(f"snapshot {folder.name}: unreadable ({exc})") from None
        if actual != info.checksum or not info.path.is_dir():
            raise StorageError(f"snapshot {folder.name}: checksum mismatch (corrupt or partial)")
        return info

    def latest(self, loader: Callable[[Path], object] | None = None) -> SnapshotInfo | None:
        """The newest snapshot that verifies (and that ``loader``, if given, loads without
        raising); each one skipped gets one warning naming why."""
        for folder in self.folders():
            try:
                info = self.verify(folder)
                if loader is not None:
                    loader(info.path)
                return info
            except Exception as exc:  # any reason a snapshot is unusable: try the one before
                log.warning("skipping snapshot %s: %s", folder, exc)
        return None

    def kept(self) -> list[SnapshotInfo]:
        """The manifests of the snapshots kept, newest first (unreadable ones left out)."""
        out = []
        for folder in self.folders():
            try:
                out.append(self.manifest(folder))
            except StorageError:
                continue
        return out

    def prune(self) -> None:
        """Delete every snapshot but the newest ``keep``."""
        for old in self.folders()[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)

    def oldest_offset(self) -> int | None:
        """The smallest log offset among the kept snapshots: the log must keep every event
        after it for the oldest kept snapshot to be recoverable."""
        kept = self.kept()
        return min(s.log_offset for s in kept) if kept else None
