"""The bad-input table of issue 22, as BENCHMARKS.md prints it: every case of
``tests/test_bad_input.py`` run through the CLI (in-process), its exit status, whether its stderr
is one error line without a traceback, and whether every output folder stayed as it was.

    .venv/bin/python benchmarks/bad_input_table.py

Rows are commands; columns are the broken files (one-off cases are listed below the table).
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_bad_input import BROKEN, CASES, command_line, make_files, placeholders  # noqa: E402

from conftest import run_cli, screen_lines  # noqa: E402


def outcome(proc) -> str:
    """'2' for a clean refusal (status 2, one error line, no traceback), else what happened."""
    lines = [ln for ln in screen_lines(proc.stderr) if not ln.startswith("denoiserlens: warn")]
    clean = len(lines) == 1 and lines[0].startswith("denoiserlens: error: ")
    if proc.returncode == 2 and clean and "Traceback" not in proc.stderr:
        return "2"
    return f"{proc.returncode}!"


def main() -> None:
    fixtures = {f for slot in BROKEN.values() for f in slot}
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp) / "files")
        names = placeholders(files)
        table: dict[str, dict[str, str]] = defaultdict(dict)
        others: list[tuple[str, str]] = []
        cells: list[str] = []
        for k, (argv, _phrase) in enumerate(CASES):
            out, new = Path(tmp) / f"out{k}", Path(tmp) / f"new{k}"
            proc = run_cli(command_line(argv, names, out, new))
            kept = sorted(p.name for p in out.iterdir()) == ["keep.txt"] and not new.exists()
            cell = outcome(proc) + ("" if kept else " (wrote)")
            cells.append(cell)
            broken = next((a for a in argv if a in fixtures), None)
            if broken is None:
                others.append((" ".join(argv), cell))
            else:
                table[argv[0]][broken.strip("{}")] = cell
    columns = [f.strip("{}") for slot in BROKEN.values() for f in slot]
    print("| command | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for command, row in table.items():
        print(f"| {command} | " + " | ".join(row.get(c, "·") for c in columns) + " |")
    print()
    for case, cell in others:
        print(f"- `{case}`: {cell}")
    clean = sum(c == "2" for c in cells)
    print(
        f"\n{len(cells)} cases: {clean} refused with status 2 and one line, output untouched; "
        f"{len(cells) - clean} not"
    )


if __name__ == "__main__":
    main()
