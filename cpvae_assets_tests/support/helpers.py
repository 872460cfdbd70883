"""Small helpers shared by the Dagster tests."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def failure_text(result) -> str:
    """Every failure message of a Dagster run, causes included."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.error is not None:
                texts.append(data.error.to_string())
            if data.user_failure_data is not None and data.user_failure_data.description:
                texts.append(data.user_failure_data.description)
    return "\n".join(texts)
