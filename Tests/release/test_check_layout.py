"""check-layout.py says how much of a layout a build still has, and fails below its bound: a
function renamed or a file moved to another module is what it must notice."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "Scripts/release/check-layout.py"


def build(tmp_path, functions):
    """An object with a section of its own per function, where SwiftPM would put it."""
    directory = tmp_path / "release" / "Boxcar.build"
    directory.mkdir(parents=True)
    source = tmp_path / "a.c"
    source.write_text("".join(f"int {name}(void) {{ return 1; }}\n" for name in functions))
    subprocess.run(["cc", "-c", "-ffunction-sections", str(source), "-o", str(directory / "A.swift.o")], check=True)
    return tmp_path / "release"


def check(tmp_path, layout_text, build_directory):
    layout = tmp_path / "layout.ld"
    layout.write_text(layout_text)
    return subprocess.run([sys.executable, str(SCRIPT), "--layout", str(layout), "--build", str(build_directory)],
                          capture_output=True, text=True)


LAYOUT = """SECTIONS {
  .text.boxcar_hot : {
    */Boxcar.build/A.swift.o(.text.tick .text.sample)
    */Gone.build/B.swift.o(.text.old)
    *libswiftCore.a:Swift.o(.text.$sSS5countSivg)
  }
}
"""


def test_a_layout_that_fits_passes_and_says_so(tmp_path):
    built = build(tmp_path, ["tick", "sample"])
    fitting = LAYOUT.replace("    */Gone.build/B.swift.o(.text.old)\n", "")
    result = check(tmp_path, fitting, built)
    assert result.returncode == 0, result.stderr
    assert "1 of 1 objects and 2 of 2 sections (100.0%)" in result.stdout


def test_renamed_functions_and_moved_files_fail_it(tmp_path):
    built = build(tmp_path, ["tick", "renamed"])
    result = check(tmp_path, LAYOUT, built)
    assert result.returncode == 1
    assert "1 of 2 objects and 1 of 3 sections (33.3%)" in result.stdout
    assert "Gone.build/B.swift.o" in result.stderr and "profile-layout.py" in result.stderr
