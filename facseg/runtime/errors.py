"""A command's mistakes in one line: a missing file, a bad value or key, named with what to do, no traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

# What facseg raises for a user's mistake (its messages name the key or file and the fix); anything else (a KeyError,
# a TypeError) is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError)


def user_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task function: in a single run, a user's mistake exits with status 1 and its message on one line
    (HYDRA_FULL_ERROR=1 keeps the traceback). In a multirun the exception goes on to the launcher, which records the
    failed job and runs the others."""

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as e:
            single = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN
            if not single or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {e}", file=sys.stderr)
            print("(HYDRA_FULL_ERROR=1 for the traceback)", file=sys.stderr)
            sys.exit(1)

    return wrapped
