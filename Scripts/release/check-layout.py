#!/usr/bin/env python3
"""Says how much of Scripts/release/idle-layout.ld the release build still has.

lld places what a linker script names and passes over what it does not find without a word, so a
layout written before files or functions moved links as if nothing had happened, and the idle
agent's pages scatter again. This reads, for each object of the build that the layout names
(`*/MODULE.build/FILE.o(...)`), whether the object exists and which of its listed sections it
still has, and prints the share found. Below --warn-below (95 %) it says so on stderr and exits 1:
build-release.sh reports it, and profile-layout.py writes the layout again.

    Scripts/release/check-layout.py [--layout FILE] [--build .build-release/release]
"""
import argparse, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBJECT = re.compile(r"^\s*\*/([^/(]+\.build/[^(]+\.o)\((.*)\)\s*$")


def sections_of(path):
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\]\s+(\S+)\s+(?:PROGBITS|NOBITS|INIT_ARRAY|FINI_ARRAY)", out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default=os.path.join(ROOT, "Scripts/release/idle-layout.ld"))
    parser.add_argument("--build", default=os.path.join(ROOT, ".build-release/release"))
    parser.add_argument("--warn-below", type=float, default=0.95)
    args = parser.parse_args()

    objects = found_objects = listed = found = 0
    missing_objects = []
    for line in open(args.layout):
        match = OBJECT.match(line)
        if not match:
            continue
        relative, names = match.group(1), match.group(2).split()
        objects += 1
        listed += len(names)
        path = os.path.join(args.build, relative)
        if not os.path.exists(path):
            missing_objects.append(relative)
            continue
        found_objects += 1
        present = sections_of(path)
        found += sum(1 for name in names if name in present)
    share = found / listed if listed else 1.0
    print(f"check-layout: {found_objects} of {objects} objects and {found} of {listed} sections "
          f"({share:.1%}) the layout names are in this build")
    if share < args.warn_below:
        gone = ", ".join(missing_objects[:5]) + (" …" if len(missing_objects) > 5 else "")
        print(f"check-layout: the layout no longer fits the code ({share:.1%} of its sections found"
              f"{'; gone: ' + gone if gone else ''}): the idle agent's resident size grows. Write it again:"
              ' sudo env "PATH=$PATH" Scripts/release/profile-layout.py', file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
