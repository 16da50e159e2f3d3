#!/usr/bin/env bash
# Runs every test: the Swift suites (unit and end-to-end), the Python interop tests against a
# real agent, the release layout's tests, then the release build (the README's start command),
# its idle agent's peak RSS and a short run of the storage benchmark. Installs what a fresh
# machine lacks first. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# libsqlite3-dev to build; libudev1 for the disk sensor's libudev test (loaded with dlopen);
# systemd for systemd-analyze, which checks Config/boxcar.service; postgresql for the collector's
# tests (each run starts a private server of its own on loopback, in a temporary directory);
# openssl for the certificates of their TLS test; prometheus (promtool too) and victoria-metrics
# for the exporter's tests, which start their own servers on loopback; librsvg2-bin's
# rsvg-convert for `boxcar plot --output x.png`, whose test reads the picture's pixels; tmux for
# `boxcar top`'s tests, which drive it in a pane of their own tmux server (send-keys, capture-pane);
# chromium for the agent's pages, which a test loads headless and reads the screenshot's pixels of;
# binutils for the release build's objcopy and readelf (Swift's own link needs it too).
missing=""
for package in binutils libsqlite3-dev libudev1 systemd postgresql openssl prometheus victoria-metrics librsvg2-bin tmux chromium; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  echo "== installing$missing"
  apt-get update -qq && apt-get install -y -qq $missing
fi
echo "== installing the Python test requirements"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r Clients/python/requirements-dev.txt

echo "== swift test"
swift test

echo "== python interop tests"
# `swift test` built the agent; this only makes sure (and is a no-op when it did).
swift build --product boxcar
BOXCAR_BIN="$(swift build --show-bin-path)/boxcar" python3 -m pytest -q Tests/interop Tests/release

echo "== the release build (the README's start command) and the idle agent: at most 20 MiB resident at peak, 8 MiB of its own, 0.3 % of a core"
Scripts/build-release.sh
# The build only warns when the idle order no longer fits the code (it links either way); here
# that fails, as the resident size it costs would, a few changes later.
Scripts/release/check-layout.py
# Loaded at a 64 KB boundary, the idle agent maps the same pages at every start (build-release.sh).
readelf -lW .build-release/release/boxcar | awk '$1 == "LOAD" { loads++; if ($NF != "0x10000") bad = 1 } END { exit bad || !loads }' \
  || { echo "the release binary's segments are not aligned to 64 KB (or readelf could not read it)"; exit 1; }
# Three runs, their median checked: the CPU figure counts 10 ms clock ticks of a minute on a shared
# machine, and one run in many reads twice its usual 0.13 % (a run's 0.35 % was seen once, the next
# three at 0.13 to 0.15 %).
for run in 1 2 3; do .build-release/release/boxcar-bench idle; done | python3 -c '
import json, statistics, sys
results = [json.loads(line) for line in sys.stdin if line.strip()]
if len(results) != 3:
    sys.exit(f"boxcar-bench idle printed {len(results)} results of 3")
for result in results:
    print(json.dumps(result))
peak, resident, anonymous, cpu = (statistics.median(r[key] for r in results)
                                  for key in ("peak_rss_bytes", "rss_bytes", "anonymous_bytes", "cpu_fraction"))
print(f"median: peak {peak} bytes, {resident} at the end, own {anonymous} bytes, {cpu:.2%} of a core")
failures = []
# The bound the project sets, 20 MiB. The peak of a run has been seen 2 MB above its usual 18.4 MB
# (three runs of one CI: 18.5, 20.3 and 20.5 MB; the same binary again: 18.2 to 18.4), its own
# memory unchanged: the resident size at the end, beside the peak, says whether such a rise came
# at the start. (No apostrophes here: this program is a single-quoted shell word.)
if peak > 20 << 20:
    failures.append("the idle agent peaked over 20 MiB resident: Scripts/release/profile-layout.py writes the"
                    " order of its functions again (README, \"The release build\")")
# Its own memory, which no layout of the binary changes: heap, stacks, caches.
if anonymous > 8 << 20:
    failures.append(f"the idle agent holds {anonymous} bytes of its own memory; at most 8 MiB")
if cpu > 0.003:
    failures.append(f"the idle agent used {cpu:.2%} of a core; at most 0.3 %")
if failures:
    sys.exit("\n".join(failures))
'

echo "== the storage benchmark runs end to end: shorter than a compaction stretch (nothing compacted) and over two"
for ticks in 300 1300; do .build-release/release/boxcar-bench storage-host --host-ticks $ticks; done | python3 -c '
import json, sys
def refuse(constant):
    sys.exit(f"storage-host printed {constant}, which JSON does not carry")
results = [json.loads(line, parse_constant=refuse) for line in sys.stdin if line.strip()]
if len(results) != 4:
    sys.exit(f"storage-host printed {len(results)} results of 4 (two layouts, two runs)")
for result in results:
    print({key: result[key] for key in ("layout", "ticks", "bytes_per_point", "writer_cpu_us_per_tick")})
if any(("block_data_bytes_per_point" in result) != (result["ticks"] >= 600) for result in results):
    sys.exit("storage-host reported block bytes for a run that compacted nothing, or none for one that did")
'
