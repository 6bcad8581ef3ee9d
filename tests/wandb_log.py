"""Read a W&B offline run's transaction log (run-ID.wandb), the file `wandb sync` uploads.

wandb 0.31 ships no Python reader for it. The format is LevelDB's log: a 7-byte file header (":W&B", magic,
version), then 32 KiB blocks of records, each with a 7-byte header (crc32, little-endian length, type: 1 full,
2 first, 3 middle, 4 last) and a protobuf `Record` as payload, possibly split across blocks.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FILE_HEADER = 7
RECORD_HEADER = 7


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending = FILE_HEADER, b""
    while pos + RECORD_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < RECORD_HEADER:  # the block's tail is padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + RECORD_HEADER])
        if kind == 0:  # zero-filled rest of an unfinished block
            break
        pending += data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def summary(path: Path) -> dict:
    """The run's final summary: the last value written for each key."""
    out = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def run_info(path: Path) -> wandb_internal_pb2.RunRecord:
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            return record.run
    raise AssertionError(f"no run record in {path}")


def config(path: Path) -> dict:
    """The run's config as logged (top-level keys, values decoded)."""
    out = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                out[item.key] = json.loads(item.value_json)
    return out
