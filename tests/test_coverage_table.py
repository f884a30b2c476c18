"""``modprobe coverage-table --update``: rewrites only the marked block, checks first."""

from pathlib import Path

from modprobe.analysis.following.coverage_table import BEGIN, END
from modprobe.commands.coverage_table import main

TINY = ["--cluster-datasets", "2", "--oscillation-datasets", "2", "--few-clusters-only"]


def test_update_rewrites_only_the_marked_block(tmp_path: Path) -> None:
    doc = tmp_path / "science.md"
    doc.write_text(f"before\n{BEGIN}\nold table\n{END}\nafter\n", encoding="utf-8")
    assert main([*TINY, "--update", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith(f"before\n{BEGIN}\n*Few clusters*") and text.endswith(f"{END}\nafter\n")
    assert "old table" not in text and "| 8 | rate 0.05 | 10-39 | 0.1 |" in text
    assert "modprobe coverage-table --datasets 50 --cluster-datasets 2" in text


def test_a_file_without_markers_is_refused_before_measuring(tmp_path: Path, capsys) -> None:
    doc = tmp_path / "science.md"
    doc.write_text("no markers here\n", encoding="utf-8")
    assert main([*TINY, "--update", str(doc)]) == 2
    assert "needs one line <!-- coverage-table: begin -->" in capsys.readouterr().err
    assert doc.read_text(encoding="utf-8") == "no markers here\n"
    assert main([*TINY, "--update", str(tmp_path / "missing.md")]) == 2
