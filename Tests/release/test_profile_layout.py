"""The idle-order profiler's own logic: reading lld's map and callgrind's profile, and choosing the
names that place the executed code without dragging code that is never run. (Running it takes
valgrind and a release build; Scripts/test.sh checks its result instead, as the idle agent's
peak RSS.)"""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("profile_layout", ROOT / "Scripts/release/profile-layout.py")
profile = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profile)

# Lines as lld writes them (VMA, LMA, size, alignment, then output / input section / symbol).
MAP = """\
             VMA              LMA     Size Align Out     In      Symbol
          544f90           544f90      1a7    16 swift5_reflstr
          544f90           544f90      1a7    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(swift5_reflstr)
          fa5000           fa5000      100    16 .text.local_helpers
          fa5000           fa5000       a7    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(.text..Lobjectdestroy.5)
          fa6000           fa6000    30000    64 .text
          fa6000           fa6000      211    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(.text.$s8NIOPosix4bindyyF)
          fa6000           fa6000      211     1                 $s8NIOPosix4bindyyF
          fa62d0           fa62d0        0    16         /b/release/NIOPosix.build/Bootstrap.swift.o:(.text.$s8NIOPosix5emptyyyF)
          fa62d0           fa62d0        0     1                 $s8NIOPosix5emptyyyF
          fa7000           fa7000     2000    16         /opt/swift/usr/lib/swift_static/linux/libswiftCore.a(Swift.o):(.text)
          fa7000           fa7000       10     1                 swift_retain
          fa7010           fa7010       10     1                 $sSaySSGSayxGSKsWlTm
          fa9000           fa9000     5000    16         /opt/swift/usr/lib/swift_static/linux/libFoundation.a(JSON.swift.o):(.text)
          fa9000           fa9000     5000     1                 $s10Foundation4JSONV5parseyyF
          fa9010           fa9010       10     1                 $sSaySSGSayxGSKsWlTm
          fae000           fae000       40    16         /b/release/Agent.build/Agent.swift.o:(.text.$sSaySSGSayxGSKsWlTm)
          fae000           fae000       40     1                 $sSaySSGSayxGSKsWlTm
          fae040           fae040       40    16         /b/release/BoxcarSampling.build/Sampler.swift.o:(.text.$s14BoxcarSampling4tickyyF)
          fae040           fae040       40     1                 $s14BoxcarSampling4tickyyF
         2000000          2000000      100  4096 .rodata
         2000000          2000000       20    16         /b/release/Agent.build/main.swift.o:(.rodata.cst16)
"""

# As callgrind writes it with --dump-instr=yes --compress-strings=no: an address per instruction.
PROFILE = """\
positions: instr
events: Ir
ob=/lib/x86_64-linux-gnu/libc.so.6
fn=epoll_wait
0xfa6010 12
ob=/tmp/boxcar-profile-x/boxcar
fn=$s8NIOPosix4bindyyF
0xfa6000 40
0xfa6004 1
fn=??
0xfa5010 3
0xfa7004 3
cob=/lib/x86_64-linux-gnu/libc.so.6
cfn=read
calls=1 0xfd7e0
0xfae008 9
fn=$s14BoxcarSampling4tickyyF
0xfae040 30
"""


def sections(tmp_path):
    path = tmp_path / "boxcar.map"
    path.write_text(MAP)
    return profile.code_sections(str(path))


def addresses(tmp_path):
    path = tmp_path / "callgrind.out"
    path.write_text(PROFILE)
    return profile.executed_addresses(str(path), "boxcar")


def test_map_gives_the_code_sections_with_their_symbols(tmp_path):
    found = [(s.name, s.start, s.end, s.symbols) for s in sections(tmp_path)]
    assert found == [
        (".text..Lobjectdestroy.5", 0xFA5000, 0xFA50A7, []),
        (".text.$s8NIOPosix4bindyyF", 0xFA6000, 0xFA6211, ["$s8NIOPosix4bindyyF"]),
        (".text", 0xFA7000, 0xFA9000, ["swift_retain", "$sSaySSGSayxGSKsWlTm"]),
        (".text", 0xFA9000, 0xFAE000, ["$s10Foundation4JSONV5parseyyF", "$sSaySSGSayxGSKsWlTm"]),
        (".text.$sSaySSGSayxGSKsWlTm", 0xFAE000, 0xFAE040, ["$sSaySSGSayxGSKsWlTm"]),
        (".text.$s14BoxcarSampling4tickyyF", 0xFAE040, 0xFAE080, ["$s14BoxcarSampling4tickyyF"]),
    ]


def test_addresses_are_those_of_the_named_object_only(tmp_path):
    assert addresses(tmp_path) == {0xFA6000, 0xFA6004, 0xFA5010, 0xFA7004, 0xFAE008, 0xFAE040}


def test_helper_patterns_come_from_the_linker_script():
    patterns = profile.helper_patterns(profile.HELPERS)
    assert ".text..L*" in patterns and ".text.objectdestroy*" in patterns
    assert all(pattern.startswith(".text.") for pattern in patterns)


def test_each_executed_section_gets_the_name_that_drags_least(tmp_path):
    names, unplaced = profile.hot_names(sections(tmp_path), addresses(tmp_path), [".text..L*"])
    # The helper matched by a pattern is not listed; libswiftCore's whole .text is executed and
    # listed by a name of its own; the outlined copy in Agent.swift.o is not: its name is also
    # defined in Foundation's JSON.swift.o, whose 20 KB of code is never run.
    assert names == ["$s14BoxcarSampling4tickyyF", "$s8NIOPosix4bindyyF", "swift_retain"]
    assert [s.name for s in unplaced] == [".text.$sSaySSGSayxGSKsWlTm"]
