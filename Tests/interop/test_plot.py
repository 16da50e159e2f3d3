"""`boxcar plot`: a run's metrics and the machine's series of its attached window drawn as SVG and
PNG (rendered by librsvg's rsvg-convert), checked as a reader would: the panels, lines and event
marks in the document, and the line's colour in the picture where the line must be."""

from __future__ import annotations

import os
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

from conftest import agent_binary, wait_for_tree_series
from boxcar import Boxcar, Event

SVG = "{http://www.w3.org/2000/svg}"


def boxcar(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(agent_binary()), *args], capture_output=True, text=True, timeout=60)


def read_png(path: Path) -> tuple[int, int, list[bytes], int]:
    """Width, height, rows of pixels (the filters undone) and channels (3 or 4) of an 8-bit,
    non-interlaced RGB(A) PNG, as rsvg-convert writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks = 8, {}
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunks.setdefault(kind, b"")
        chunks[kind] += data[offset + 8:offset + 8 + length]
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(row) for row in rows], channels


def test_a_run_is_drawn_with_its_events_and_the_machine_beside_it(agent, tmp_path: Path):
    with Boxcar(str(agent.socket)) as mbox:
        with mbox.new_experiment(name="plotted", namespace="t") as experiment:
            # The loss falls for 150 steps over about 3 s, an event at step 75; the machine is
            # sampled every second meanwhile.
            for step in range(150):
                experiment.log_metrics({"loss": 2.0 / (1 + step / 20)}, step=step)
                if step == 75:
                    experiment.log_event(Event(name="lr.drop"))
                time.sleep(0.02)
            key = wait_for_tree_series(experiment)
            experiment.flush()
            run = experiment.id

    svg_path = tmp_path / "run.svg"
    result = boxcar("plot", run, "--key", "loss", "--key", "system/process.count*", "--axis", "time",
                    "--output", str(svg_path), "--socket", str(agent.socket))
    assert result.returncode == 0, result.stderr
    root = ET.parse(svg_path).getroot()
    panels = [g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]
    assert [p.get("data-title") for p in panels] == ["loss", "process.count"]
    lines = [line for line in root.iter(f"{SVG}polyline") if line.get("class") == "series"]
    assert [line.get("data-key") for line in lines] == ["loss", key]
    events = [line for line in root.iter(f"{SVG}line") if line.get("class") == "event"]
    assert len(events) == 2  # the event, across both panels
    # The loss falls: its line's first point is higher up the picture than its last.
    points = [tuple(map(float, pair.split(","))) for pair in lines[0].get("points").split()]
    assert len(points) > 20
    assert points[0][1] < points[-1][1]

    # By step, the event sits at step 75 of the trainer's 0 to 149.
    by_step = tmp_path / "steps.svg"
    result = boxcar("plot", run, "--key", "loss", "--axis", "step", "--output", str(by_step),
                    "--socket", str(agent.socket))
    assert result.returncode == 0, result.stderr
    root = ET.parse(by_step).getroot()
    plot = next(r for r in root.iter(f"{SVG}rect") if r.get("class") == "plot")
    left, width = float(plot.get("x")), float(plot.get("width"))
    event = next(line for line in root.iter(f"{SVG}line") if line.get("class") == "event")
    share = (float(event.get("x1")) - left) / width
    assert abs(share - 75 / 149) < 0.02, share

    # The same as PNG: the loss line's colour where its first point is drawn, white far from it.
    png_path = tmp_path / "run.png"
    result = boxcar("plot", run, "--key", "loss", "--axis", "step", "--output", str(png_path),
                    "--socket", str(agent.socket))
    assert result.returncode == 0, result.stderr
    width_px, height_px, rows, channels = read_png(png_path)
    assert (width_px, height_px) == (int(root.get("width")), int(root.get("height")))
    line = next(p for p in root.iter(f"{SVG}polyline") if p.get("class") == "series")
    colour = bytes.fromhex(line.get("stroke").lstrip("#"))
    x0, y0 = (round(float(v)) for v in line.get("points").split()[0].split(","))

    def pixel(x: int, y: int) -> bytes:
        return rows[y][x * channels:x * channels + 3]

    def near(a: bytes, b: bytes, within: int = 40) -> bool:
        return all(abs(p - q) <= within for p, q in zip(a, b))

    around = [pixel(x, y) for x in range(x0, x0 + 4) for y in range(y0 - 2, y0 + 3)]
    assert any(near(p, colour) for p in around), (colour.hex(), [p.hex() for p in around])
    assert pixel(width_px - 3, height_px - 3) == b"\xff\xff\xff"
    # Not blank: the line's colour is in many pixels.
    drawn = sum(1 for y in range(height_px) for x in range(width_px) if near(pixel(x, y), colour, 30))
    assert drawn > 200, drawn


def test_plot_says_what_is_wrong(agent, tmp_path: Path):
    with Boxcar(str(agent.socket)) as mbox:
        with mbox.new_experiment(name="plotted", namespace="t") as experiment:
            experiment.log_metrics({"loss": 1.0}, step=1)
            experiment.flush()
            run = experiment.id
    socket = ["--socket", str(agent.socket)]
    result = boxcar("plot", run, "--key", "accuracy*", "--output", str(tmp_path / "x.svg"), *socket)
    assert result.returncode != 0
    assert "no metric of" in result.stderr and "loss" in result.stderr
    result = boxcar("plot", run, "--key", "loss", "--output", str(tmp_path / "x.pdf"), *socket)
    assert result.returncode != 0 and ".svg or .png" in result.stderr
    result = boxcar("plot", run, "--key", "loss", "--since", "yesterday", "--output", str(tmp_path / "x.svg"), *socket)
    assert result.returncode != 0 and "cannot read" in result.stderr
    assert not (tmp_path / "x.svg").exists()
    # A window with nothing in it.
    result = boxcar("plot", run, "--key", "loss", "--until", "2001-01-01T00:00:00Z", "--output", str(tmp_path / "x.svg"), *socket)
    assert result.returncode != 0 and "no numeric point" in result.stderr
