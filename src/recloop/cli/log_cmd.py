"""``recloop log info DATA`` and ``recloop log export DATA --out events.parquet``.

``DATA`` is a data folder written by ``recloop serve --data-dir`` (its ``events.db``), an
``events.db`` file, or a log URL (``sqlite:///…``, ``redis://host:port/db?stream=NAME``).
The export is a table ``recloop train --data`` reads: ``user_id``, ``item_id``, ``type``,
``value``, ``timestamp`` (epoch seconds), ``offset``, ``context`` (JSON text or null).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recloop.cli.common import print_json
from recloop.errors import InvalidInputError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "log",
        help="inspect or export the event log",
        description="Inspect or export the event log of `recloop serve --data-dir DATA`.",
    )
    cmds = p.add_subparsers(dest="log_command", metavar="ACTION")
    cmds.required = True
    info = cmds.add_parser("info", help="events, offsets, size, oldest and newest")
    info.add_argument("data", help="data folder, events.db file, or log URL")
    info.add_argument("--json", action="store_true", help="print the figures as JSON")
    info.set_defaults(func=run_info)
    export = cmds.add_parser("export", help="write the log to a Parquet file")
    export.add_argument("data", help="data folder, events.db file, or log URL")
    export.add_argument("--out", required=True, help="the .parquet file to write")
    export.set_defaults(func=run_export)


def _url(data: str) -> str:
    if "://" in data:
        return data
    path = Path(data)
    if path.is_dir():
        path = path / "events.db"
    if not path.is_file():
        raise InvalidInputError("data", f"{data!r} holds no event log (no events.db)")
    return f"sqlite://{path.absolute()}"


def _when(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def run_info(args: argparse.Namespace) -> int:
    from recloop.storage import open_log

    log = open_log(_url(args.data))
    try:
        info = log.info()
    finally:
        log.close()
    out: dict[str, Any] = {
        "url": info.url,
        "events": info.events,
        "first_offset": info.first_offset,
        "last_offset": info.last_offset,
        "size_bytes": info.size_bytes,
        "oldest": _when(info.oldest_timestamp),
        "newest": _when(info.newest_timestamp),
    }
    if args.json:
        print_json(out)
    else:
        for key, value in out.items():
            print(f"{key:>13}: {value}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recloop.storage import open_log

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise InvalidInputError("--out", f"must end in .parquet, got {str(out)!r}")
    log = open_log(_url(args.data))
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("type", pa.string()),
            ("value", pa.float64()),
            ("timestamp", pa.float64()),
            ("offset", pa.int64()),
            ("context", pa.string()),
        ]
    )
    n = 0
    tmp = out.with_name(out.name + ".tmp")
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for first, cols in log.read(1, batch_size=100_000):
                ctx = [
                    json.dumps(cols.contexts[r]) if r in cols.contexts else None
                    for r in range(len(cols))
                ]
                table = pa.table(
                    [
                        cols.user_ids,
                        cols.item_ids,
                        cols.types,
                        cols.values,
                        cols.timestamps,
                        list(range(first, first + len(cols))),
                        ctx,
                    ],
                    schema=schema,
                )
                writer.write_table(table)
                n += len(cols)
        tmp.replace(out)
    finally:
        log.close()
        tmp.unlink(missing_ok=True)
    print(f"exported {n} events to {out}")
    return 0
