#!/usr/bin/env python3
"""Records the values a real agent's sampler reads, for boxcar-bench storage-host.

    Bench/Traces/record.py BOXCAR_BINARY SECONDS > Bench/Traces/host-2core.tsv

Runs the agent with its defaults (a tick a second) and a head that is never compacted for
SECONDS, then writes the machine's series as its head holds them: the keys on the first line,
then a line of values a tick (tab-separated, each double's shortest exact text, empty where the
tick had no value: sensors on a slower cadence, a device that came or went)."""

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time


def main() -> None:
    binary, seconds = sys.argv[1], float(sys.argv[2])
    with tempfile.TemporaryDirectory() as directory:
        database = os.path.join(directory, "boxcar.db")
        agent = subprocess.Popen(
            [binary, "agent", "--db", database, "--socket", os.path.join(directory, "agent.sock"),
             "--sample-interval", "1", "--head-ticks", "100000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        write(sqlite3.connect(database))


def trimmed(data: bytes, count: int) -> list:
    """A tick's values laid out as the store writes them (TickValues in Store+Head.swift): a 4-bit
    count of bytes a value, then each value's bit pattern's high bytes, little-endian."""
    offset, values = (count + 1) // 2, []
    for index in range(count):
        kept = data[index // 2] >> (4 * (index % 2)) & 0x0F
        bits = int.from_bytes(data[offset:offset + kept], "little") << (8 * (8 - kept))
        offset += kept
        values.append(struct.unpack("<d", bits.to_bytes(8, "little"))[0])
    assert offset == len(data), "a tick of the head is corrupt"
    return values


def write(connection: sqlite3.Connection) -> None:
    keys = dict(connection.execute("SELECT id, key FROM series WHERE parent_id = 'host'"))
    sets = {}
    for set_id, members in connection.execute("SELECT id, members FROM series_sets WHERE parent_id = 'host'"):
        ids, value, shift = [], 0, 0
        for byte in members:
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte & 0x80 == 0:
                ids.append(value)
                value, shift = 0, 0
        sets[set_id] = ids
    ticks = []
    for set_id, data, packing in connection.execute("SELECT set_id, data, packing FROM ticks ORDER BY seq"):
        ids = sets[set_id]
        values = struct.unpack(f"<{len(ids)}d", data) if packing == 0 else trimmed(data, len(ids))
        ticks.append({keys[i]: v for i, v in zip(ids, values)})
    # The first tick has no rates yet (nothing to take them over).
    ticks = ticks[1:]
    kept = sorted(set.union(*(set(tick) for tick in ticks)))
    print("\t".join(kept))
    for tick in ticks:
        print("\t".join(repr(tick[key]) if key in tick else "" for key in kept))


if __name__ == "__main__":
    main()
