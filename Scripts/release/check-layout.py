#!/usr/bin/env python3
"""Says how much of Scripts/release/idle-order.txt the release binary still has.

build-release.sh tells lld to pass over the names of the list it does not find (a warning for each
would bury the build's output), so a list written before functions were renamed or moved to another
module would link as if nothing had happened, and the idle agent's pages would scatter again. This
reads which of the listed functions the binary defines and prints the share found. Below
--warn-below (95 %) it says so on stderr, with a few of the names gone, and exits 1:
build-release.sh reports it, and profile-layout.py writes the list again.

    Scripts/release/check-layout.py [--order FILE] [--binary .build-release/release/boxcar]
"""
import argparse, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def defined_symbols(binary):
    out = subprocess.run(["nm", "--defined-only", "--no-demangle", "--format=just-symbols", binary],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--order", default=os.path.join(ROOT, "Scripts/release/idle-order.txt"))
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build-release/release/boxcar"))
    parser.add_argument("--warn-below", type=float, default=0.95)
    args = parser.parse_args()

    listed = [name for name in open(args.order).read().split("\n") if name]
    defined = defined_symbols(args.binary)
    gone = [name for name in listed if name not in defined]
    found = len(listed) - len(gone)
    share = found / len(listed) if listed else 1.0
    print(f"check-layout: {found} of the {len(listed)} functions ({share:.1%}) {os.path.basename(args.order)} "
          "names are in this build")
    if share < args.warn_below:
        examples = ", ".join(gone[:3]) + (" …" if len(gone) > 3 else "")
        print(f"check-layout: the list no longer fits the code ({share:.1%} found; gone: {examples}): the idle"
              " agent's resident size grows. Write it again: Scripts/release/profile-layout.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
