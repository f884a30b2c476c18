"""The base class of modprobe's expected failures (bad input, a refused overwrite, ...).

Every error a user can cause and fix (a dataset that does not validate, an unknown model
alias, a run folder that already exists, a GPU that is not there) is a
:class:`ModprobeError`; its message says what is wrong, naming the file, field or option,
and what to do. Command lines print it as one line and exit with code 2
(`modprobe.cli`); anything else is a bug. Torch-free, so every module can import it.
"""

from __future__ import annotations


class ModprobeError(Exception):
    """An expected failure: bad input or an environment problem the user can fix.

    The message is complete and actionable on its own (``--out runs/x is a file; choose
    a folder``); command lines print it without a traceback and exit with code 2.
    """
