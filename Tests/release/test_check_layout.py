"""check-layout.py says how much of the idle order a binary still has, and fails below its bound:
a function renamed or moved to another module (a new symbol name) is what it must notice."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "Scripts/release/check-layout.py"


def binary(tmp_path, functions):
    """A program that defines the functions."""
    source = tmp_path / "a.c"
    source.write_text("".join(f"int {name}(void) {{ return 1; }}\n" for name in functions)
                      + "int main(void) { return 0; }\n")
    subprocess.run(["cc", str(source), "-o", str(tmp_path / "agent")], check=True)
    return tmp_path / "agent"


def check(tmp_path, names, program):
    order = tmp_path / "idle-order.txt"
    order.write_text("".join(name + "\n" for name in names))
    return subprocess.run([sys.executable, str(SCRIPT), "--order", str(order), "--binary", str(program)],
                          capture_output=True, text=True)


def test_a_list_that_fits_passes_and_says_so(tmp_path):
    result = check(tmp_path, ["tick", "sample"], binary(tmp_path, ["tick", "sample"]))
    assert result.returncode == 0, result.stderr
    assert "2 of the 2 functions (100.0%)" in result.stdout


def test_renamed_functions_fail_it_and_are_named(tmp_path):
    result = check(tmp_path, ["tick", "sample", "old"], binary(tmp_path, ["tick", "renamed"]))
    assert result.returncode == 1
    assert "1 of the 3 functions (33.3%)" in result.stdout
    assert "sample, old" in result.stderr and "profile-layout.py" in result.stderr
