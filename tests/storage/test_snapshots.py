"""``ModelStore``: atomic, versioned snapshots; corrupt or partial ones are skipped."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from recloop.errors import ConfigError, StorageError
from recloop.storage import ModelStore


def saver(offset: int, payload: bytes = b"weights") -> object:
    def save(folder: Path) -> dict[str, int]:
        folder.mkdir()
        (folder / "state.bin").write_bytes(payload)
        (folder / "meta.json").write_text(json.dumps({"offset": offset}))
        return {"model_version": 2, "log_offset": offset}

    return save


def test_write_records_offset_version_checksum(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "snaps")
    info = store.write(saver(17))  # type: ignore[arg-type]
    manifest = json.loads((info.folder / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["log_offset"] == 17
    assert manifest["model_version"] == 2 and manifest["checksum"].startswith("sha256:")
    assert store.latest() == info
    assert (info.path / "state.bin").read_bytes() == b"weights"


def test_keeps_the_newest_n(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, keep=2)
    for offset in (5, 10, 15, 20):
        store.write(saver(offset))  # type: ignore[arg-type]
    assert [s.log_offset for s in store.kept()] == [20, 15]
    assert store.oldest_offset() == 15


@pytest.mark.parametrize(
    "damage", ["flip_byte", "truncate", "no_manifest", "bad_manifest", "format"]
)
def test_a_damaged_snapshot_is_skipped_with_one_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path, keep=3)
    store.write(saver(5, b"old weights"))  # type: ignore[arg-type]
    newest = store.write(saver(9, b"new weights"))  # type: ignore[arg-type]
    state = newest.path / "state.bin"
    manifest = newest.folder / "manifest.json"
    if damage == "flip_byte":
        state.write_bytes(b"new weightz")
    elif damage == "truncate":
        state.write_bytes(b"new")
    elif damage == "no_manifest":
        manifest.unlink()
    elif damage == "bad_manifest":
        manifest.write_text("{")
    else:
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": 99}))
    with caplog.at_level(logging.WARNING, logger="recloop.storage.snapshots"):
        got = store.latest()
    assert got is not None and got.log_offset == 5
    assert (got.path / "state.bin").read_bytes() == b"old weights"
    skipped = [r for r in caplog.records if "skipping snapshot" in r.getMessage()]
    assert len(skipped) == 1 and newest.folder.name in skipped[0].getMessage()


def test_a_snapshot_the_loader_refuses_is_skipped(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.write(saver(1, b"good"))  # type: ignore[arg-type]
    store.write(saver(2, b"bad"))  # type: ignore[arg-type]

    def loader(path: Path) -> None:
        if (path / "state.bin").read_bytes() == b"bad":
            raise ValueError("cannot load")

    got = store.latest(loader)
    assert got is not None and got.log_offset == 1


def test_a_half_written_snapshot_is_removed_at_open(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.write(saver(3))  # type: ignore[arg-type]
    half = tmp_path / ".tmp-123"
    (half / "model").mkdir(parents=True)
    (half / "model" / "state.bin").write_bytes(b"par")
    again = ModelStore(tmp_path)
    assert not half.exists()
    latest = again.latest()
    assert latest is not None and latest.log_offset == 3


def test_a_failing_save_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)

    def save(folder: Path) -> dict[str, int]:
        folder.mkdir()
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.write(save)
    assert list(tmp_path.iterdir()) == [] and store.latest() is None


def test_bad_folders_and_settings_are_clear_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(StorageError, match="snapshots: cannot write to .*file"):
        ModelStore(a_file / "snaps")
    with pytest.raises(ConfigError, match="snapshot_keep: must be an integer >= 1, got 0"):
        ModelStore(tmp_path, keep=0)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(StorageError, match="cannot write to"):
            ModelStore(ro)
