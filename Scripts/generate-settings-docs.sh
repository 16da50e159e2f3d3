#!/usr/bin/env bash
# Writes the README's table of settings and Config/boxcar.yaml from their declarations
# (Agent/Settings/AgentSettings.swift). A test fails while either differs from them.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product boxcar
boxcar="$(swift build --show-bin-path)/boxcar"
"$boxcar" settings yaml > Config/boxcar.yaml
"$boxcar" settings markdown | python3 -c '
import sys
table = sys.stdin.read()
start = "<!-- settings: written by Scripts/generate-settings-docs.sh from Agent/Settings/AgentSettings.swift -->"
end = "<!-- end of settings -->"
readme = open("README.md").read()
if start not in readme or end not in readme:
    sys.exit("README.md has no settings section (its start and end lines) to write into")
before, rest = readme.split(start, 1)
_, after = rest.split(end, 1)
open("README.md", "w").write(before + start + "\n" + table + end + after)
'
echo "wrote Config/boxcar.yaml and the settings table of README.md"
