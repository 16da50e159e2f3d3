#!/usr/bin/env bash
# Writes the README's table of settings and Config/boxcar.yaml from their declarations
# (Agent/Settings/AgentSettings.swift). A test fails while either differs from them.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product boxcar
boxcar="$(swift build --show-bin-path)/boxcar"
"$boxcar" settings yaml > Config/boxcar.yaml
# Writes stdin between the README's lines $1 and $2.
into_readme() {
  python3 -c '
import sys
table = sys.stdin.read()
start, end = sys.argv[1], sys.argv[2]
readme = open("README.md").read()
if start not in readme or end not in readme:
    sys.exit("README.md has no section (its start and end lines " + start + ") to write into")
before, rest = readme.split(start, 1)
_, after = rest.split(end, 1)
open("README.md", "w").write(before + start + "\n" + table + end + after)
' "$1" "$2"
}
"$boxcar" settings markdown | into_readme \
  "<!-- settings: written by Scripts/generate-settings-docs.sh from Agent/Settings/AgentSettings.swift -->" "<!-- end of settings -->"
# The exporter's names (Sources/BoxcarExposition/ExpositionNames.swift and HealthPage.swift).
"$boxcar" settings exposition | into_readme \
  "<!-- exposition: written by Scripts/generate-settings-docs.sh from Sources/BoxcarExposition -->" "<!-- end of exposition -->"
# The machine metrics (Sources/BoxcarSensors/MachineMetrics.swift).
"$boxcar" settings metrics | into_readme \
  "<!-- machine metrics: written by Scripts/generate-settings-docs.sh from Sources/BoxcarSensors/MachineMetrics.swift -->" "<!-- end of machine metrics -->"
echo "wrote Config/boxcar.yaml and the settings, exposition and machine metrics tables of README.md"
