"""Optional speed features that a platform may refuse (page-locking the rings, a copy stream, torch.compile without
a working compiler, cuDNN's autotuning): the run goes on on the plain path, with one warning line that says which
feature, why, and what runs instead. Never a crash, and the same output bytes (every plain path computes the same
maps)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def warn_fallback(feature: str, reason: BaseException | str, plain: str) -> None:
    """One line on stderr: `warning: <feature> refused (<why>); <what runs instead>`."""
    why = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else reason
    why = " ".join(why.split())[:300]  # one line, even for a multi-line compiler error
    print(f"warning: {feature} refused ({why}); {plain}", file=sys.stderr, flush=True)


class PlainOnFailure:
    """Calls `fast` until a call raises; then warns once and calls `plain` from then on (the same call again
    first). A real error, say out of memory, is then raised by the plain call."""

    def __init__(self, fast: Callable, plain: Callable, feature: str, instead: str):
        self.fast, self.plain, self.feature, self.instead = fast, plain, feature, instead

    def __call__(self, *args, **kwargs):
        if self.fast is not None:
            try:
                return self.fast(*args, **kwargs)
            except Exception as err:  # compilers fail in many ways: BackendCompilerFailed, RuntimeError, OSError...
                warn_fallback(self.feature, err, self.instead)
                self.fast = None
        return self.plain(*args, **kwargs)
