"""modprobe.cli: exit codes, one-line errors, --debug, and the shared option checks."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

import pytest

from modprobe import cli
from modprobe.cli import ModprobeError


def _command(raise_: BaseException | None = None, code: int | None = 0):
    def main(argv: list[str] | None = None) -> int | None:
        parser = argparse.ArgumentParser(prog="thing")
        parser.add_argument("--steps", type=cli.positive_int, default=1)
        parser.parse_args(argv)
        if raise_ is not None:
            raise raise_
        return code

    return cli.entry_point(main)


def test_expected_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _command(ModprobeError("--out x is a file; choose a folder"))([]) == 2
    err = capsys.readouterr().err
    assert err == "error: --out x is a file; choose a folder\n"


def test_os_errors_name_the_file_and_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/a/items.csv")
    assert _command(full)([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "/runs/a/items.csv" in err and "free space" in err
    denied = PermissionError(errno.EACCES, "Permission denied", "/runs/b")
    assert _command(denied)([]) == 2
    assert "/runs/b: permission denied; choose a location you can write" in capsys.readouterr().err


def test_bug_is_exit_1_without_traceback_unless_debug(capsys: pytest.CaptureFixture[str]) -> None:
    assert _command(ZeroDivisionError("division by zero"))([]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error (ZeroDivisionError" in err
    assert "--debug" in err
    assert _command(ZeroDivisionError("division by zero"))(["--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_help_and_interrupts(capsys: pytest.CaptureFixture[str]) -> None:
    assert _command()(["--steps", "0"]) == 2
    assert "argument --steps: must be a positive integer" in capsys.readouterr().err
    assert _command()(["--help"]) == 0
    assert _command(KeyboardInterrupt())([]) == cli.EXIT_INTERRUPTED
    assert _command(code=None)([]) == 0


@pytest.mark.parametrize(("parse", "text"), [
    (cli.positive_int, "0"), (cli.positive_int, "-5"), (cli.positive_int, "2.5"),
    (cli.nonnegative_int, "-1"), (cli.positive_float, "0"), (cli.positive_float, "nan"),
    (cli.positive_float, "inf"), (cli.nonnegative_float, "-0.1"), (cli.probability, "1"),
    (cli.probability, "0"), (cli.dtype_name, "float8"),
])
def test_argparse_types_refuse(parse, text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


def test_argparse_types_accept() -> None:
    assert cli.positive_int("3") == 3 and cli.nonnegative_int("0") == 0
    assert cli.probability("0.95") == 0.95 and cli.dtype_name("bf16") == "bfloat16"


def test_check_device() -> None:
    assert cli.check_device("cpu") == "cpu"
    assert cli.check_device(None) in ("cpu", "cuda")
    with pytest.raises(ModprobeError, match="'gpu' is not a device"):
        cli.check_device("gpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModprobeError, match="no CUDA GPU is visible"):
            cli.check_device("cuda:0")


def test_check_out(tmp_path: Path) -> None:
    assert cli.check_out(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking writes nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModprobeError, match="is a file, not a folder"):
        cli.check_out(tmp_path / "file")
    with pytest.raises(ModprobeError, match="is a file, so no folder can be created"):
        cli.check_out(tmp_path / "file" / "sub")
    full = tmp_path / "full"
    full.mkdir()
    (full / "model.safetensors").write_text("keep")
    with pytest.raises(ModprobeError, match="--overwrite") as refused:
        cli.check_out(full, overwrite=False)
    assert "--resume" not in str(refused.value)
    with pytest.raises(ModprobeError, match="--resume"):
        cli.check_out(full, resume=False)
    assert cli.check_out(full, overwrite=True) == full
    assert cli.check_out(full, resume=True) == full
    with pytest.raises(ModprobeError, match="nothing to resume"):
        cli.check_out(tmp_path / "empty", resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]


def test_check_out_unwritable() -> None:
    with pytest.raises(ModprobeError, match="cannot write in"):
        cli.check_out("/sys/kernel/modprobe-run")


def test_known_errors_are_modprobe_errors() -> None:
    from modprobe.adapters import AdapterError
    from modprobe.analysis.table import TableError
    from modprobe.capture import CandidateError
    from modprobe.data import DatasetError
    from modprobe.loading import ModelLoadError, ModelNotFoundError
    from modprobe.study import StudyError

    for kind in (AdapterError, TableError, CandidateError, DatasetError, ModelLoadError,
                 ModelNotFoundError, StudyError):
        assert issubclass(kind, ModprobeError), kind
    assert issubclass(ModelNotFoundError, FileNotFoundError)  # unchanged for old callers


def test_check_device_gpu_index(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert cli.check_device("cuda:1") == "cuda:1"
    assert cli.check_device(None) == "cuda"
    with pytest.raises(ModprobeError, match=r"has 2 GPU\(s\), cuda:0..cuda:1"):
        cli.check_device("cuda:7")
