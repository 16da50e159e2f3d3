#!/usr/bin/env python3
"""Writes Scripts/release/idle-layout.ld, the linker script that lays out first the sections an
idle agent uses. Run it as root with the Swift toolchain on PATH, on a quiet machine, after code
changes that move the idle path (the build files it relinks become root's):

    sudo env "PATH=$PATH" Scripts/release/profile-layout.py [--seconds 15]

Why: when a process touches a page of a file it maps, the kernel maps up to 16 neighbouring
pages that are already cached with it (fault-around). Scattered through 30 MB of code, the
functions an idle agent runs drag in ten times their size. Put side by side, they do not.

How:
1. Links the agent with every function and constant that has a symbol of its own (a name no
   other section has) alone on its page: a page-aligned pad of one byte before each, placed
   with --symbol-ordering-file.
2. Empties the page cache and turns readahead off on the build's disk, so that only the pages
   the agent touches are read and nothing is mapped around them. Starts the agent on a fresh
   database with its defaults, waits, and reads which of its pages are mapped
   (/proc/PID/pagemap). Restores readahead (also on an error, Ctrl-C, SIGTERM or SIGHUP).
3. Maps the pages back to input sections through the linker map and writes those sections,
   grouped by object file, as two output sections inserted before .text and .rodata.
The other sections (local helpers that many files name alike, the whole .text of objects built
without function sections) stay where the linker puts them: any on a touched page is kept, so a
few untouched neighbours come along. The linker's own merged constants cannot be placed. At the
end, and on any failure, it relinks the release build with the layout in the file (no recompile).
"""
import argparse, collections, os, re, shutil, signal, struct, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYOUT = os.path.join(ROOT, "Scripts/release/idle-layout.ld")
BINARY = os.path.join(ROOT, ".build-release/release/boxcar")
OUTPUTS = (".text", ".rodata")

# An lld map line: VMA, LMA, size, alignment, then the output section (one space in), an input
# section "file:(section)" (nine spaces in) or a symbol (seventeen).
MAP_LINE = re.compile(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+( +)(\S.*)$")


class Section:
    def __init__(self, start, size, output, file, name):
        self.start, self.end, self.output, self.file, self.name = start, start + size, output, file, name
        self.symbol = None  # the first symbol the map lists in it

    def pages(self):
        return range(self.start // 4096, (self.end - 1) // 4096 + 1)


def read_map(path):
    """The non-empty input sections of .text and .rodata, in address order."""
    sections, output, current = [], None, None
    for line in open(path):
        match = MAP_LINE.match(line)
        if not match:
            continue
        start, size, indent, rest = int(match[1], 16), int(match[2], 16), len(match[3]), match[4].strip()
        if indent < 3:
            output, current = rest, None
        elif ":(" in rest:
            current = None
            if output in OUTPUTS and size:
                file, name = rest.rsplit(":(", 1)
                current = Section(start, size, output, file, name[:-1])
                sections.append(current)
        elif current is not None and current.symbol is None:
            current.symbol = rest
    return sections


def link(*linker_args, layout="none"):
    """Relinks the release agent (the objects are already built) with extra linker arguments."""
    flags = [arg for extra in linker_args for arg in ("-Xlinker", extra)]
    subprocess.run([os.path.join(ROOT, "Scripts/build-release.sh"), "--product", "boxcar", *flags],
                   env=dict(os.environ, BOXCAR_LAYOUT=layout), check=True, stdout=subprocess.DEVNULL)


def padded(sections, directory):
    """Assembles one pad per section whose symbol names no other section; returns the object and
    the ordering. (lld places every section of a symbol name at that name's first place in the
    ordering: local helpers that many files define under one name would share a page.)"""
    count = collections.Counter(s.symbol for s in sections)
    assembly, order = [], []
    for index, section in enumerate(s for s in sections if s.symbol and count[s.symbol] == 1 and s.name != s.output):
        kind, flags = ("text", "axR") if section.output == ".text" else ("rodata", "aR")
        assembly.append(f'.section .{kind}.boxcar_pad_{index},"{flags}",@progbits\n'
                        f".p2align 12\n.globl boxcar_pad_{index}\nboxcar_pad_{index}:\n.byte 0\n")
        order += [f"boxcar_pad_{index}", section.symbol]
    source, pads, ordering = (os.path.join(directory, name) for name in ("pads.s", "pads.o", "order.txt"))
    write(source, "".join(assembly))
    write(ordering, "\n".join(order) + "\n")
    subprocess.run([clang(), "-c", source, "-o", pads], check=True)
    return pads, ordering


def clang():
    """The toolchain's clang (beside swift), else the one on PATH."""
    swift = shutil.which("swift")
    beside = os.path.join(os.path.dirname(os.path.realpath(swift)), "clang") if swift else ""
    return beside if os.path.exists(beside) else shutil.which("clang") or sys.exit("profile-layout: no clang")


def readahead_control(path):
    """The read_ahead_kb file of the disk holding path."""
    device = os.stat(path).st_dev
    block = f"/sys/dev/block/{os.major(device)}:{os.minor(device)}"
    for candidate in (block + "/queue/read_ahead_kb", block + "/../queue/read_ahead_kb"):
        if os.path.exists(candidate):
            return candidate
    sys.exit(f"profile-layout: {path} is not on a block device whose readahead can be turned off")


def touched_pages(binary, seconds):
    """Runs the agent from a cold cache without readahead; the page numbers it mapped of binary."""
    control = readahead_control(binary)
    saved = open(control).read().strip()
    directory = tempfile.mkdtemp(prefix="boxcar-profile-")
    agent = None
    try:
        subprocess.run(["sync"], check=True)
        write(control, "0")
        write("/proc/sys/vm/drop_caches", "3")
        with open(directory + "/agent.log", "wb") as log:
            agent = subprocess.Popen([binary, "agent", "--db", directory + "/boxcar.db",
                                      "--socket", directory + "/agent.sock"], stderr=log)
        time.sleep(seconds)
        if agent.poll() is not None:
            output = open(directory + "/agent.log", errors="replace").read()[-2000:]
            sys.exit(f"profile-layout: the agent exited with {agent.returncode} during the run:\n{output}")
        return mapped_pages(agent.pid, os.path.realpath(binary))
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        write(control, saved)
        shutil.rmtree(directory, ignore_errors=True)


def mapped_pages(pid, path):
    """Page numbers (from the file's load address) of path that pid has mapped."""
    pages, base = set(), None
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in open(f"/proc/{pid}/maps"):
            fields = line.split()
            if len(fields) < 6 or fields[5] != path:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if base is None:
                base = start - int(fields[2], 16)
            count = (end - start) // 4096
            pagemap.seek(start // 4096 * 8)
            entries = pagemap.read(count * 8)
            for index in range(count):
                if struct.unpack_from("<Q", entries, index * 8)[0] >> 63:  # present
                    pages.add((start - base) // 4096 + index)
    return pages


def file_pattern(path):
    """A pattern for an input file that holds wherever the package is checked out and whichever
    toolchain and compiler built it; None for the linker's own sections (merged constants)."""
    if path.startswith("<"):
        return None
    member = re.match(r".*/(lib[^/]+\.a)\((.*)\)$", path)
    if member:
        return f"*{member[1]}:{member[2]}"
    built = re.match(r".*/release/([^/]+\.build/.*)$", path)
    return f"*/{built[1]}" if built else "*/" + os.path.basename(path)


def layout(hot):
    """The linker script: per output section, the hot input sections grouped by file."""
    script = ["/* Written by Scripts/release/profile-layout.py: the sections an idle agent touches. */"]
    for output in OUTPUTS:
        by_file = collections.OrderedDict()
        for section in hot:
            pattern = file_pattern(section.file)
            if section.output == output and pattern:
                by_file.setdefault(pattern, []).append(section.name)
        lines = [f"    {file}({' '.join(dict.fromkeys(names))})" for file, names in by_file.items()]
        script += ["SECTIONS {", f"  {output}.boxcar_hot : {{", *lines, "  }", f"}} INSERT BEFORE {output};"]
    return "\n".join(script) + "\n"


def hot_sections(sections, pages):
    """The sections (pads left out) with a byte on a page in pages."""
    return [s for s in sections if "boxcar_pad_" not in s.name and any(p in pages for p in s.pages())]


def write(path, text):
    with open(path, "w") as file:
        file.write(text)


def stop(signum, frame):
    raise SystemExit(f"profile-layout: signal {signum}")  # so that readahead is restored


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="how long the agent runs (default 15)")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("profile-layout: run as root (it empties the page cache and sets the disk's readahead)")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        with tempfile.TemporaryDirectory(prefix="boxcar-layout-") as directory:
            natural = os.path.join(directory, "natural.map")
            link("-Map=" + natural, "--no-demangle")
            pads, ordering = padded(read_map(natural), directory)
            spread = os.path.join(directory, "spread.map")
            link("-Map=" + spread, "--no-demangle", pads, "--symbol-ordering-file=" + ordering, "--no-warn-symbol-ordering")
            pages = touched_pages(BINARY, arguments.seconds)
            hot = hot_sections(read_map(spread), pages)
        if not any(s.output == ".text" for s in hot):
            sys.exit("profile-layout: no code of the agent's was found mapped; the layout is left as it was")
        write(LAYOUT, layout(hot))
        sizes = {output: sum(s.end - s.start for s in hot if s.output == output) for output in OUTPUTS}
        print(f"profile-layout: {len(hot)} sections ({sizes['.text'] // 1024} KB of code, "
              f"{sizes['.rodata'] // 1024} KB of constants) written to {os.path.relpath(LAYOUT, ROOT)}")
    finally:
        link(layout=LAYOUT)  # never leave the padded binary behind


if __name__ == "__main__":
    main()
