"""The layout profiler's own logic: reading lld's map, and the linker script it writes.
(Running it needs root and a cold page cache; Scripts/test.sh checks its result instead, as the
idle agent's peak RSS.)"""
import importlib.util
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("profile_layout", ROOT / "Scripts/release/profile-layout.py")
profile = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profile)

# Lines as lld writes them (VMA, LMA, size, alignment, then output / input section / symbol).
MAP = """\
             VMA              LMA     Size Align Out     In      Symbol
          544f90           544f90      1a7    16 swift5_reflstr
          544f90           544f90      1a7    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(swift5_reflstr)
          fa6000           fa6000    30000    64 .text
          fa6000           fa6000      211    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(.text.$s8NIOPosix4bindyyF)
          fa6000           fa6000      211     1                 $s8NIOPosix4bindyyF
          fa6220           fa6220       a7    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(.text..Lobjectdestroy.5)
          fa62d0           fa62d0        0    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(.text.$s8NIOPosix5emptyyyF)
          fa62d0           fa62d0        0     1                 $s8NIOPosix5emptyyyF
          fa7000           fa7000     2000    16         /opt/swift/usr/lib/swift_static/linux/libswiftCore.a(Swift.o):(.text)
          fa7000           fa7000       10     1                 swift_retain
          fa9000           fa9000     1000    16         /opt/swift/usr/lib/swift_static/linux/libswiftCore.a(Swift.o):(.text.$sSS5countSivg)
          fa9000           fa9000     1000     1                 $sSS5countSivg
          faa000           faa000       40    16         /b/release/NIOCore.build/IO.swift.o:(.text.objectdestroyTm)
          faa000           faa000       40     1                 objectdestroyTm
          faa040           faa040       40    16         /b/release/NIOCore.build/Channel.swift.o:(.text.objectdestroyTm)
          faa040           faa040       40     1                 objectdestroyTm
         2000000          2000000      100  4096 .rodata
         2000000          2000000       20    16         /b/release/Agent.build/main.swift.o:(.rodata.cst16)
         2000020          2000020       10     1         <internal>:(.rodata.str1.1)
"""


def sections(tmp_path):
    path = tmp_path / "boxcar.map"
    path.write_text(MAP)
    return profile.read_map(str(path))


def test_map_gives_the_code_and_constants_sections_with_their_first_symbol(tmp_path):
    found = [(s.output, s.name, s.start, s.end, s.symbol) for s in sections(tmp_path)]
    assert found == [
        (".text", ".text.$s8NIOPosix4bindyyF", 0xFA6000, 0xFA6211, "$s8NIOPosix4bindyyF"),
        (".text", ".text..Lobjectdestroy.5", 0xFA6220, 0xFA62C7, None),  # a local label: no symbol
        (".text", ".text", 0xFA7000, 0xFA9000, "swift_retain"),
        (".text", ".text.$sSS5countSivg", 0xFA9000, 0xFAA000, "$sSS5countSivg"),
        (".text", ".text.objectdestroyTm", 0xFAA000, 0xFAA040, "objectdestroyTm"),
        (".text", ".text.objectdestroyTm", 0xFAA040, 0xFAA080, "objectdestroyTm"),
        (".rodata", ".rodata.cst16", 0x2000000, 0x2000020, None),
        (".rodata", ".rodata.str1.1", 0x2000020, 0x2000030, None),
    ]
    assert list(sections(tmp_path)[2].pages()) == [0xFA7, 0xFA8]


def test_files_are_named_so_that_they_match_in_any_checkout():
    assert profile.file_pattern("/work/x/.build-release/x86_64-unknown-linux-gnu/release/NIOPosix.build/IO.swift.o") \
        == "*/NIOPosix.build/IO.swift.o"
    assert profile.file_pattern("/opt/swift/usr/lib/swift_static/linux/libswiftCore.a(Swift.o)") \
        == "*libswiftCore.a:Swift.o"
    # The C runtime's and the toolchain's own objects, whichever compiler version put them there.
    assert profile.file_pattern("/usr/lib/gcc/x86_64-linux-gnu/12/crtbeginS.o") == "*/crtbeginS.o"
    assert profile.file_pattern("<internal>") is None  # the linker's merged constants: not placeable


def test_hot_sections_are_those_on_touched_pages_without_the_pads(tmp_path):
    pad = profile.Section(0xFA5000, 1, ".text", "/tmp/pads.o", ".text.boxcar_pad_0")
    hot = profile.hot_sections([pad, *sections(tmp_path)], {0xFA5, 0xFA8, 0x2000})
    assert [(s.name, s.start) for s in hot] == [
        (".text", 0xFA7000),  # its second page was touched
        (".rodata.cst16", 0x2000000), (".rodata.str1.1", 0x2000020)]


def test_layout_groups_hot_sections_by_file_before_text_and_rodata(tmp_path):
    hot = [s for s in sections(tmp_path) if s.name not in (".text.$sSS5countSivg", ".text.objectdestroyTm")]
    script = profile.layout(hot)
    assert script.splitlines()[1:] == [
        "SECTIONS {",
        "  .text.boxcar_hot : {",
        "    */NIOPosix.build/Bootstrap.swift.o(.text.$s8NIOPosix4bindyyF .text..Lobjectdestroy.5)",
        "    *libswiftCore.a:Swift.o(.text)",
        "  }",
        "} INSERT BEFORE .text;",
        "SECTIONS {",
        "  .rodata.boxcar_hot : {",
        "    */Agent.build/main.swift.o(.rodata.cst16)",
        "  }",
        "} INSERT BEFORE .rodata;",
    ]


def test_pads_put_each_section_with_a_symbol_of_its_own_alone_on_its_page(tmp_path):
    pads, ordering = profile.padded(sections(tmp_path), str(tmp_path))
    # Not padded: a whole .text, and objectdestroyTm, which two files define (lld would place both
    # after the one pad, and either being touched would make both look hot).
    assert pathlib.Path(ordering).read_text().split() == [
        "boxcar_pad_0", "$s8NIOPosix4bindyyF", "boxcar_pad_1", "$sSS5countSivg"]
    headers = subprocess.run(["readelf", "-SW", pads], capture_output=True, text=True, check=True).stdout
    pads = [line.split() for line in headers.splitlines() if "boxcar_pad_" in line]
    assert len(pads) == 2
    for fields in pads:
        assert fields[-1] == "4096"  # page-aligned
        assert "R" in fields[-4]  # retained: --gc-sections would drop them, nothing refers to them
