"""`python -m modprobe.following`: the bring-your-own-predictions CLI and table format."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modprobe.analysis.following.simulate import simulate_following_table
from modprobe.analysis.table import TableError, read_table, validate_table
from modprobe.following import main

BALANCE_LINE = re.compile(r"balance_point=(-?\d+\.\d{3}) ci=\[(-?\d+\.\d{3}), (-?\d+\.\d{3})\]")


def _two_models(tmp_path: Path, suffix: str = ".csv") -> Path:
    table = pd.concat(
        [
            simulate_following_table(800, balance_point=-0.4, seed=1, model="qwen"),
            simulate_following_table(800, balance_point=0.3, seed=2, model="llava"),
        ],
        ignore_index=True,
    )
    path = tmp_path / f"preds{suffix}"
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path)
    return path


def test_cli_prints_a_balance_point_block_per_model_and_writes_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main([str(_two_models(tmp_path)), "--out", str(out), "--bootstrap", "100"])
    assert code == 0
    blocks = capsys.readouterr().out.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["model=qwen", "model=llava"]
    values = []
    for block in blocks:
        lines = block.splitlines()
        assert any(line.startswith("TFR=") for line in lines)
        assert any(line.startswith("monotonicity: decreasing") for line in lines)
        match = BALANCE_LINE.fullmatch(lines[-1])
        assert match, lines[-1]
        value, low, high = map(float, match.groups())
        assert low <= value <= high
        values.append(value)
    assert values[0] == pytest.approx(-0.4, abs=0.12) and values[1] == pytest.approx(0.3, abs=0.12)
    for name in (
        "following_curve.png",
        "following_split.png",
        "uncertainty_distribution.png",
        "summary.txt",
    ):
        assert (out / name).stat().st_size > 0


def test_cli_reads_parquet_and_honours_axis_floor_and_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _two_models(tmp_path, ".parquet")
    argv = [
        str(path),
        "--axis",
        "abs",
        "--entropy-floor",
        "0.05",
        "--filter-correct",
        "--bootstrap",
        "50",
        "--seed",
        "3",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "axis=abs (H_t - H_v (nats), entropy floor 0.05 nats)" in text


def test_cli_reports_when_the_curve_does_not_cross(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "text_lover.csv"
    simulate_following_table(500, balance_point=4.0, seed=3).to_csv(path, index=False)
    assert main([str(path), "--bootstrap", "50"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("balance_point=none (fitted P(text) stays above 0.5")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.drop(columns="y_multi"), "missing required column(s) 'y_multi'"),
        (
            lambda t: t.assign(h_text=t["h_text"].astype(object).where(t.index != 7, "abc")),
            "column 'h_text', row 7: entropy is not a finite number ('abc')",
        ),
        (
            lambda t: t.assign(h_vision=t["h_vision"].where(t.index != 3, -0.5)),
            "column 'h_vision', row 3: entropy is negative",
        ),
        (
            lambda t: t.assign(h_vision=t["h_vision"].where(t.index != 5, np.nan)),
            "column 'h_vision', row 5: entropy is missing (NaN)",
        ),
        (
            lambda t: t.assign(correct_text=["maybe"] + [True] * (len(t) - 1)),
            "column 'correct_text', row 0: expected a boolean",
        ),
    ],
)
def test_invalid_tables_exit_2_naming_column_and_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate, message: str
) -> None:
    path = tmp_path / "bad.csv"
    mutate(simulate_following_table(20, seed=0)).to_csv(path, index=False)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_filter_without_correctness_columns_and_missing_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.csv"
    simulate_following_table(20, seed=0).drop(columns=["correct_text"]).to_csv(path, index=False)
    assert main([str(path), "--filter-correct"]) == 2
    assert "correct_text" in capsys.readouterr().err
    assert main([str(tmp_path / "absent.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "t.json").write_text("{}")
    assert main([str(tmp_path / "t.json")]) == 2


def test_module_entry_point_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    simulate_following_table(10, seed=0).drop(columns="h_text").to_csv(path, index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "modprobe.following", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "missing required column(s) 'h_text'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_table_normalises_types_and_errors_carry_location() -> None:
    table = simulate_following_table(5, seed=0)
    table["correct_text"] = ["yes", "no", "1", "0", "True"]
    table["h_text"] = table["h_text"].astype(str)
    out = validate_table(table)
    assert out["correct_text"].tolist() == [True, False, True, False, True]
    assert out["h_text"].dtype == np.float64
    with pytest.raises(TableError) as info:
        validate_table(table.assign(y_vision=[None, "red", "red", "red", "red"]))
    assert (info.value.column, info.value.row) == ("y_vision", 0)


def test_read_table_keeps_numeric_looking_answers_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    pd.DataFrame(
        {"h_text": [0.1], "h_vision": [0.2], "y_text": ["007"], "y_vision": ["7"], "y_multi": ["7"]}
    ).to_csv(path, index=False)
    table = read_table(path)
    assert table.loc[0, "y_text"] == "007"  # not parsed to 7, so Y_t != Y_v stays true


def test_cli_cluster_bootstrap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = simulate_following_table(300, seed=2)
    table["scene"] = [f"s{i % 12}" for i in range(len(table))]
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    assert main([str(path), "--bootstrap", "100", "--cluster", "scene"]) == 0
    out = capsys.readouterr().out
    assert "bootstrap over 12 clusters of items (column 'scene', given)" in out
    assert main([str(path), "--cluster", "image"]) == 2
    assert "no column 'image'" in capsys.readouterr().err


def test_cli_finds_a_cluster_column_and_writes_summary_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    table = simulate_following_table(300, seed=2, share_incorrect=0.2)
    table["cluster"] = [f"s{i % 12}" for i in range(len(table))]
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "out"
    assert main([str(path), "--bootstrap", "100", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bootstrap over 12 clusters of items (column 'cluster', found in the table)" in printed
    assert "filter (the paper's filter, both unimodal answers correct)" in printed
    summary = json.loads((out / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    for key in ("balance_point", "balance_point_monotone"):
        assert set(summary[key]) >= {"value", "ci", "crosses"}
    assert set(summary["goodness_of_fit"]) >= {"statistic", "p_value", "verdict"}
    assert summary["n_filtered_incorrect"] > 0
    assert summary["lines"] == printed.strip().splitlines()
    assert main([str(path), "--bootstrap", "100", "--no-cluster"]) == 0
    assert "clusters of items" not in capsys.readouterr().out
    assert main([str(path), "--bootstrap", "100", "--all-conflicts"]) == 0
    assert "filtered_incorrect=0" in capsys.readouterr().out
