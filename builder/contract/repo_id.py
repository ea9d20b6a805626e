"""What a Hub dataset repo id looks like: the loader tells a repo id from a local folder by it, and the export and
upload refuse a malformed one before converting or sending anything."""

from __future__ import annotations

import re

from builder.contract.errors import UsageError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")  # NAMESPACE/NAME


def check_repo_id(repo_id: str) -> None:
    """`namespace/name`, as the Hub spells it."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    problem = None
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        problem = str(err).splitlines()[0]
    if problem or not REPO_ID.match(repo_id):
        raise UsageError([f"repo id {repo_id!r} is malformed: use NAMESPACE/NAME, e.g. your-user/fgbg-depth"
                          + (f" ({problem})" if problem else "")])
