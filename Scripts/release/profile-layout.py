#!/usr/bin/env python3
"""Writes Scripts/release/idle-order.txt, the functions an idle agent runs, one symbol name per
line, which build-release.sh gives lld (--symbol-ordering-file) so that they sit side by side at
the start of the code. Run it after changes that move what an idle agent runs (no root needed;
valgrind must be installed; two relinks and a run, 2 to 4 minutes):

    Scripts/release/profile-layout.py [--seconds 20]

Why: when a process touches a page of a file it maps, the kernel maps the cached pages around it
too (fault-around, 64 KB, or the whole large folio the page is in). Scattered through 28 MB of
code, the functions an idle agent runs make it map three times their size. Side by side, they
do not.

How:
1. Relinks the release agent with a map, to know each code section's place and symbols.
2. Runs it on a fresh database with its defaults under valgrind's callgrind, which records every
   instruction the agent executes (not samples: the list is the same on a busy machine), and
   stops it. The sections those instructions lie in are the executed ones.
3. For each executed section, lists one of its symbol names. lld moves every section that
   defines a listed name, and the compiler defines some names in many files, or in an object's
   whole code section (the Swift and Foundation libraries are not built a section per function):
   a name is listed only when the sections it would move that run no code at all hold at most
   16 KB. (An object's whole code section that runs some code moves whole: the size moved in all
   is printed.) The compiler's local helpers, which local-helpers.ld places by pattern, are left
   out.
4. Writes the names sorted (a new profile's diff shows what changed on the idle path) and relinks.
"""
import argparse, bisect, collections, fnmatch, os, re, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORDER = os.path.join(ROOT, "Scripts/release/idle-order.txt")
HELPERS = os.path.join(ROOT, "Scripts/release/local-helpers.ld")
BINARY = os.path.join(ROOT, ".build-release/release/boxcar")
DRAG_LIMIT = 16 * 1024

# An lld map line: VMA, LMA, size, alignment, then the output section (one space in), an input
# section "file:(section)" (nine spaces in) or a symbol (seventeen).
MAP_LINE = re.compile(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+( +)(\S.*)$")


class Section:
    def __init__(self, start, size, name):
        self.start, self.end, self.name, self.symbols = start, start + size, name, []


def code_sections(map_path):
    """The non-empty input sections of the code (output sections named .text*), in address
    order, each with the symbols the map lists in it."""
    sections, output, current = [], None, None
    for line in open(map_path):
        match = MAP_LINE.match(line)
        if not match:
            continue
        start, size, indent, rest = int(match[1], 16), int(match[2], 16), len(match[3]), match[4].strip()
        if indent < 3:
            output, current = rest, None
        elif ":(" in rest:
            current = None
            if output.startswith(".text") and size:
                current = Section(start, size, rest.rsplit(":(", 1)[1][:-1])
                sections.append(current)
        elif current is not None and indent >= 17:
            current.symbols.append(rest)
    return sorted(sections, key=lambda section: section.start)


def executed_addresses(callgrind_output, binary_name):
    """The instruction addresses callgrind counted in the object named binary_name (written with
    --dump-instr=yes --compress-strings=no: "ob=PATH" lines, then one line per instruction)."""
    addresses, current = set(), None
    with open(callgrind_output, errors="replace") as profile:
        for line in profile:
            if line.startswith("ob="):
                current = os.path.basename(line[3:].strip())
            elif line.startswith("0x") and current == binary_name:
                addresses.add(int(line.split(maxsplit=1)[0], 16))
    return addresses


def helper_patterns(linker_script):
    """The section patterns of local-helpers.ld's *(...)."""
    text = re.sub(r"/\*.*?\*/", "", open(linker_script).read(), flags=re.S)
    return [pattern for group in re.findall(r"\*\(([^)]*)\)", text) for pattern in group.split()]


def hot_names(sections, addresses, patterns):
    """One name per executed section (see the module's step 3), and the executed sections that
    no name can place without dragging more than DRAG_LIMIT of code that is never run."""
    starts = [section.start for section in sections]
    executed = set()
    for address in addresses:
        index = bisect.bisect_right(starts, address) - 1
        if index >= 0 and address < sections[index].end:
            executed.add(index)
    holders = collections.defaultdict(list)
    for index, section in enumerate(sections):
        for name in section.symbols:
            holders[name].append(index)

    def drag(name):
        return sum(sections[i].end - sections[i].start for i in holders[name] if i not in executed)

    names, unplaced = set(), []
    for index in sorted(executed):
        section = sections[index]
        if any(fnmatch.fnmatchcase(section.name, pattern) for pattern in patterns):
            continue
        best = min(section.symbols, key=drag, default=None)
        if best is not None and drag(best) <= DRAG_LIMIT:
            names.add(best)
        else:
            unplaced.append(section)
    return sorted(names), unplaced


def run_under_callgrind(binary, seconds, directory):
    """Starts the agent under callgrind, lets it sample for `seconds` after it is up, stops it
    with SIGTERM (callgrind writes its profile as the process exits); the profile's path. It runs
    a copy without debug info, which the valgrind of Debian 12 cannot read (DWARF 5): callgrind
    names functions by the symbol table, which the copy keeps."""
    output = os.path.join(directory, "callgrind.out")
    copy = os.path.join(directory, "boxcar")
    subprocess.run(["objcopy", "--strip-debug", binary, copy], check=True)
    socket = os.path.join(directory, "agent.sock")
    with open(os.path.join(directory, "agent.log"), "wb") as log:
        agent = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no", "--compress-pos=no",
             "--dump-instr=yes", "--dump-line=no", f"--callgrind-out-file={output}",
             copy, "agent", "--db", os.path.join(directory, "boxcar.db"), "--socket", socket],
            stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300  # valgrind starts the agent some 50 times slower
        while not os.path.exists(socket):
            if agent.poll() is not None or time.monotonic() > deadline:
                tail = open(os.path.join(directory, "agent.log"), errors="replace").read()[-2000:]
                sys.exit(f"profile-layout: the agent did not start under valgrind:\n{tail}")
            time.sleep(0.5)
        time.sleep(seconds)
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=300)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    if not os.path.exists(output):
        sys.exit("profile-layout: callgrind wrote no profile")
    return output


def relink(order, *linker_args):
    """Relinks the release agent (the objects are already built) with the list in `order`."""
    flags = [arg for extra in linker_args for arg in ("-Xlinker", extra)]
    subprocess.run([os.path.join(ROOT, "Scripts/build-release.sh"), "--product", "boxcar", *flags],
                   env=dict(os.environ, BOXCAR_LAYOUT=order), check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20,
                        help="how long the agent samples once it is up (default 20)")
    arguments = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("profile-layout: valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="boxcar-profile-") as directory:
        map_path = os.path.join(directory, "boxcar.map")
        relink(ORDER if os.path.exists(ORDER) else "none", "-Map=" + map_path, "--no-demangle")
        sections = code_sections(map_path)
        addresses = executed_addresses(run_under_callgrind(BINARY, arguments.seconds, directory), "boxcar")
    names, unplaced = hot_names(sections, addresses, helper_patterns(HELPERS))
    listed = set(names)
    moved = sum(s.end - s.start for s in sections if listed.intersection(s.symbols))
    if not any("BoxcarSampling" in name for name in names):
        sys.exit("profile-layout: the profile holds none of the sampler's code; the list is left as it was")
    with open(ORDER, "w") as file:
        file.write("".join(name + "\n" for name in names))
    print(f"profile-layout: {len(names)} functions written to {os.path.relpath(ORDER, ROOT)}, moving "
          f"{moved // 1024} KB of code to the front; "
          f"{len(unplaced)} executed sections ({sum(s.end - s.start for s in unplaced) // 1024} KB) share "
          "their names with too much code that is not run, and stay where they are")
    relink(ORDER)


if __name__ == "__main__":
    main()
