"""Keep credentials out of everything a run writes: logged configs, metrics.json, W&B runs."""

from __future__ import annotations

import os
import re
from typing import Any

SECRET_NAME = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential|private[_-]?key)", re.IGNORECASE)
REDACTED = "<redacted>"


def secret_values() -> set[str]:
    """Values of environment variables whose names say they hold a credential (WANDB_API_KEY, HF_TOKEN, ...)."""
    return {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 6}


def redact(value: Any, secrets: set[str] | None = None) -> Any:
    """A copy of a config tree with credential-named keys and any credential value replaced."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_NAME.search(str(k)) else redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v, secrets) for v in value)
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
    return value
