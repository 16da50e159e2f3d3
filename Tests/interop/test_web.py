"""The agent's pages (`--http`, `/`) as a person reads them: the experiments listed, a run's page
with its charts (inline SVG: panels, lines, event marks), events, metadata and artifacts, its file
downloaded, refreshing while the run is live; loaded in headless Chromium (Debian's `chromium`)
and checked by the screenshot's pixels; and the token typed once into the login form, kept in an
HttpOnly, SameSite=Strict cookie, while scripts still send the bearer header."""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import agent_binary, running_agent, wait_for_tree_series
from monitoring import get, http_address
from test_plot import read_png
from boxcar import Boxcar, Event

SVG = "{http://www.w3.org/2000/svg}"
HTML = {"Accept": "text/html"}
GPUS = "gpus 2\n0 utilization.gpu 87\n1 utilization.gpu 12\n0 power 312000\n1 power 95000\n"


def fake_nvml(directory: Path) -> Path:
    library = directory / "libnvidia-ml.so.1"
    shutil.copy(agent_binary().parent / "libFakeNVML.so", library)
    (directory / "libnvidia-ml.so.1.script").write_text(GPUS)
    return library


def chart(page: str) -> ET.Element:
    """The page's one inline SVG, parsed."""
    match = re.search(r"<svg .*?</svg>", page, re.S)
    assert match, "no chart on the page"
    return ET.fromstring(match.group(0))


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None


def links(page: str) -> dict[str, str]:
    parser = Links()
    parser.feed(page)
    return {text: href for href, text in parser.links}


def test_the_pages_show_runs_their_charts_events_metadata_and_files(tmp_path: Path):
    artifact = tmp_path / "weights <v1>.bin"
    artifact.write_bytes(bytes(range(256)) * 300)
    with running_agent(tmp_path, "--http", "127.0.0.1:0", "--nvml-library", str(fake_nvml(tmp_path))) as agent:
        address = http_address(agent)
        with Boxcar(str(agent.socket)) as mbox:
            with mbox.new_experiment(name="resnet <b>bold</b>", namespace="vision") as experiment:
                experiment.update_metadata("learning_rate", 0.001)
                experiment.update_metadata("optimizer", "adamw")
                experiment.upload_artifact(str(artifact))
                # The loss falls over 120 steps (about 2.5 s), an event at step 60; the machine is
                # sampled meanwhile (this process is the attached trainer).
                for step in range(120):
                    experiment.log_metrics({"loss": 2.0 / (1 + step / 10), "accuracy": step / 120}, step=step)
                    if step == 60:
                        experiment.log_event(Event(name="lr.drop"))
                    time.sleep(0.02)
                wait_for_tree_series(experiment)
                experiment.flush()
                run = experiment.id

                # The list: the run, its name escaped, a link to its page, live while attached.
                status, headers, body = get(f"http://{address}/", HTML)
                index = body.decode()
                assert status == 200 and headers["Content-Type"].startswith("text/html")
                assert "script-src" not in headers["Content-Security-Policy"]  # no script at all
                assert "resnet &lt;b&gt;bold&lt;/b&gt;" in index and "<b>bold" not in index
                assert links(index)["resnet <b>bold</b>"] == f"/experiments/{run}"
                assert 'class="live"' in index

                status, _, body = get(f"http://{address}/experiments/{run}", HTML)
                page = body.decode()
                assert status == 200
                # Live: the browser loads it again.
                assert re.search(r'<meta http-equiv="refresh" content="\d+">', page)
                svg = chart(page)
                panels = [g.get("data-title") for g in svg.iter(f"{SVG}g") if g.get("class") == "panel"]
                # The trainer's metrics, then the machine's charts of its window: both GPUs' use
                # and power, this process's CPU.
                assert panels[:2] == ["accuracy", "loss"], panels
                assert {"hw.gpu.utilization", "hw.power", "process.cpu.utilization"} <= set(panels), panels
                keys = [line.get("data-key") for line in svg.iter(f"{SVG}polyline") if line.get("class") == "series"]
                assert "loss" in keys
                assert sum(1 for key in keys if key.startswith("system/hw.gpu.utilization")) == 2
                events = [line for line in svg.iter(f"{SVG}line") if line.get("class") == "event"]
                assert len(events) == len(panels)  # the event, across every panel
                # Events, metadata, artifacts, the trainer's process.
                assert re.search(r"<td>lr\.drop</td>", page)
                assert re.search(r'learning_rate</td><td class="mono">0\.001</td>', page)
                assert re.search(r'optimizer</td><td class="mono">adamw</td>', page)
                assert f"<td class=\"number\">{os.getpid()}</td>" in page

                # The artifact downloads as it was uploaded, under its name.
                href = next(href for text, href in links(page).items() if text.endswith("weights <v1>.bin"))
                status, headers, body = get(f"http://{address}{href}")
                assert status == 200 and body == artifact.read_bytes()
                assert headers["Content-Disposition"].startswith('attachment; filename="weights <v1>.bin"')
                assert get(f"http://{address}/experiments/{run}/files/nope")[0] == 404
                # HEAD says the size GET would send.
                head = urllib.request.Request(f"http://{address}{href}", method="HEAD")
                with urllib.request.urlopen(head, timeout=10) as response:
                    assert int(response.headers["Content-Length"]) == artifact.stat().st_size

        # Without a token the pages answer to loopback names only: a site an attacker points at
        # 127.0.0.1 (DNS rebinding) gets nothing through a person's browser.
        assert get(f"http://{address}/experiments/{run}", {**HTML, "Host": "evil.example"})[0] == 421
        assert get(f"http://{address}{href}", {"Host": f"evil.example:{address.rsplit(':', 1)[1]}"})[0] == 421
        assert get(f"http://{address}/", {**HTML, "Host": f"localhost:{address.rsplit(':', 1)[1]}"})[0] == 200

        # What a trainer may log at the edges of a float (float32's largest, as a placeholder) is
        # drawn, not a failure.
        with Boxcar(str(agent.socket)) as mbox:
            with mbox.new_experiment(name="huge", namespace="vision") as huge:
                huge.log_metrics({"loss": 3.4e38}, step=0)
                huge.log_metrics({"loss": -1.7e308}, step=1)
                huge.flush()
                status, _, body = get(f"http://{address}/experiments/{huge.id}", HTML)
                assert status == 200 and chart(body.decode()) is not None

        # The form: patterns, the step axis, a window; what it cannot read is said on the page.
        query = urllib.parse.urlencode({"key": "loss", "axis": "step"})
        svg = chart(get(f"http://{address}/experiments/{run}?{query}", HTML)[2].decode())
        assert [g.get("data-title") for g in svg.iter(f"{SVG}g") if g.get("class") == "panel"] == ["loss"]
        assert 'selected>step' in get(f"http://{address}/experiments/{run}?{query}", HTML)[2].decode()
        page = get(f"http://{address}/experiments/{run}?since=yesterday", HTML)[2].decode()
        assert "cannot read &quot;yesterday&quot;" in page
        page = get(f"http://{address}/experiments/{run}?key=nothing*", HTML)[2].decode()
        assert "No metric of this experiment matches nothing*" in page
        assert get(f"http://{address}/experiments/no-such-run", HTML)[0] == 404


def test_the_run_page_in_chromium_shows_the_falling_loss_and_its_event(tmp_path: Path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (Scripts/test.sh installs it)"
    with running_agent(tmp_path, "--http", "127.0.0.1:0") as agent:
        address = http_address(agent)
        with Boxcar(str(agent.socket)) as mbox:
            with mbox.new_experiment(name="in-chromium", namespace="t") as experiment:
                for step in range(200):
                    experiment.log_metrics({"loss": 2.0 / (1 + step / 10)}, step=step)
                    if step == 100:
                        experiment.log_event(Event(name="checkpoint"))
                    time.sleep(0.005)
                experiment.flush()
                run = experiment.id
        url = f"http://{address}/experiments/{run}?key=loss&axis=step"
        shot = tmp_path / "page.png"
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900", f"--screenshot={shot}", url],
            capture_output=True, text=True, timeout=120)
        assert shot.exists(), result.stderr[-2000:]
    width, height, rows, channels = read_png(shot)
    assert (width, height) == (1280, 900)

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        return tuple(rows[y][x * channels:x * channels + 3])

    def near(colour: tuple[int, int, int], hex_colour: str, within: int = 40) -> bool:
        want = bytes.fromhex(hex_colour)
        return all(abs(a - b) <= within for a, b in zip(colour, want))

    blue = [(x, y) for y in range(height) for x in range(width) if near(pixel(x, y), "1f77b4")]
    # Not blank: the loss line is drawn, long (a falling curve over most of the chart's width).
    assert len(blue) > 400, len(blue)
    xs = sorted(x for x, _ in blue)
    assert xs[-1] - xs[0] > width // 2
    # Where a falling loss must be: high (small y) at its left end, low at its right.
    left = [y for x, y in blue if x < xs[0] + 40]
    right = [y for x, y in blue if x > xs[-1] - 40]
    assert max(left) < min(right) - 50 or sum(left) / len(left) < sum(right) / len(right) - 100, (left[:10], right[:10])
    # The event's dashed red line, standing across the panel.
    red = [(x, y) for y in range(height) for x in range(width) if near(pixel(x, y), "b00020", 50)]
    assert len(red) > 40, len(red)
    assert xs[0] < sorted(x for x, _ in red)[len(red) // 2] < xs[-1]
    # The page's frame is there too: the dark header across the top.
    assert near(pixel(width // 2, 5), "1f2937", 10)


def request(url: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
    """(status, headers, body) of a GET, or of a form's POST with `data`, not following redirects."""

    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    body = urllib.parse.urlencode(data).encode() if data is not None else None
    opener = urllib.request.build_opener(Stay)
    try:
        with opener.open(urllib.request.Request(url, data=body, headers=headers or {}), timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_the_token_is_typed_once_and_kept_in_a_strict_httponly_cookie(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    with running_agent(tmp_path, "--http", "0.0.0.0:0", "--allow-remote", "--token-file", str(token)) as agent:
        port = http_address(agent).rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        with Boxcar(str(agent.socket)) as mbox:
            with mbox.new_experiment(name="guarded", namespace="t") as experiment:
                experiment.log_metrics({"loss": 1.0}, step=1)
                experiment.flush()
                run = experiment.id

        # A browser is sent to the form, and back to the page after it; a script is told 401.
        status, headers, _ = request(f"{base}/experiments/{run}?key=loss", headers=HTML)
        assert status == 303
        assert headers["Location"] == "/login?next=" + urllib.parse.quote(f"/experiments/{run}?key=loss", safe="")
        status, headers, _ = request(f"{base}/")
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        assert request(f"{base}/experiments/{run}/files/x")[0] == 401
        form = request(f"{base}/login?next=%2F", headers=HTML)[2]
        assert '<input id="token" name="token" type="password"' in form

        # A wrong token: the form again, and no cookie.
        status, headers, page = request(f"{base}/login", {"token": "guess", "next": "/"})
        assert status == 403 and "not this agent" in page and "Set-Cookie" not in headers
        # The right one: a cookie a script cannot read and another site cannot send.
        status, headers, _ = request(f"{base}/login", {"token": "s3cret-token", "next": f"/experiments/{run}"})
        assert status == 303 and headers["Location"] == f"/experiments/{run}"
        cookie = headers["Set-Cookie"]
        attributes = [part.strip() for part in cookie.split(";")]
        assert "HttpOnly" in attributes and "SameSite=Strict" in attributes and "Path=/" in attributes
        assert "s3cret-token" not in cookie
        session = attributes[0]
        status, _, page = request(f"{base}/experiments/{run}", headers={**HTML, "Cookie": session})
        assert status == 200 and "guarded" in page and "Sign out" in page
        # /metrics reads it too; a forged cookie does not.
        assert request(f"{base}/metrics", headers={"Cookie": session})[0] == 200
        forged = session[:-1] + ("1" if session.endswith("0") else "0")
        assert request(f"{base}/", headers={**HTML, "Cookie": forged})[0] == 303

        # Scripts still send the bearer header.
        status, _, page = request(f"{base}/", headers={"Authorization": "Bearer s3cret-token"})
        assert status == 200 and "guarded" in page

        # Where the form sends one afterwards is this server's own path only; a form posted from
        # another site's page is refused.
        assert request(f"{base}/login", {"token": "s3cret-token", "next": "//evil.example/x"})[1]["Location"] == "/"
        assert request(f"{base}/login", {"token": "s3cret-token", "next": "https://evil.example/"})[1]["Location"] == "/"
        status, headers, _ = request(f"{base}/login", {"token": "s3cret-token"}, {"Origin": "http://evil.example"})
        assert status == 403 and "Set-Cookie" not in headers
        # A body past the form's 4 KiB is refused.
        assert request(f"{base}/login", {"token": "x" * 5000})[0] == 413

        # Signing out ends the cookie.
        status, headers, _ = request(f"{base}/logout", {}, {"Cookie": session})
        assert status == 303 and "Max-Age=0" in headers["Set-Cookie"]
