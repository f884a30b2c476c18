"""The base class of modprobe's expected failures (bad input, a refused overwrite, ...).

Every error a user can cause and fix (a dataset that does not validate, an unknown model
alias, a run folder that already exists, a GPU that is not there) is a
:class:`ModprobeError`; its message says what is wrong, naming the file, field or option,
and what to do. Command lines print it as one line and exit with code 2
(`modprobe.cli`); anything else is a bug. Torch-free, so every module can import it.
"""

from __future__ import annotations

import errno


class ModprobeError(Exception):
    """An expected failure: bad input or an environment problem the user can fix.

    The message is complete and actionable on its own (``--out runs/x is a file; choose
    a folder``); command lines print it without a traceback and exit with code 2.
    """


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_OS_FIXES = {
    errno.ENOSPC: "no space left on the device; free space or choose another folder",
    errno.EDQUOT: "disk quota exceeded; free space or choose another folder",
    errno.EACCES: "permission denied; choose a location you can write, or fix its permissions",
    errno.EPERM: "operation not permitted; choose a location you can write",
    errno.EROFS: "read-only file system; choose a writable location",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EISDIR: "is a folder where a file was expected; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
}


def describe(err: BaseException) -> str:
    """The message a user sees for ``err``: names the file and the fix, no traceback.

    ``ModprobeError`` messages are already written for users and pass unchanged;
    ``OSError`` gets its path and a fix by error number; out-of-memory errors suggest a
    smaller batch.
    """
    if isinstance(err, ModprobeError):
        return str(err).strip() or type(err).__name__
    if isinstance(err, OSError):
        where = err.filename if err.filename is not None else None
        fix = _OS_FIXES.get(err.errno or -1) or err.strerror or _first_line(err)
        if where is None:
            # PIL's UnidentifiedImageError and friends put the path in the message only.
            return f"{_first_line(err)} ({fix})" if err.errno in _OS_FIXES else _first_line(err)
        return f"{where}: {fix}"
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return (f"out of memory ({_first_line(err)}); use a smaller --batch-size, a smaller "
                "--dtype (bfloat16), or a machine with more memory")
    return _first_line(err)
