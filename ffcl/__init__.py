"""ffcl: continual learning with Forward-Forward local learners, as Avalanche strategies."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["StreamLearner"]


def __getattr__(name: str) -> Any:  # lazy: `import ffcl` (and the CLI's start) stays light
    if name == "StreamLearner":
        from .stream_learner import StreamLearner

        return StreamLearner
    raise AttributeError(f"module 'ffcl' has no attribute {name!r}")


def __dir__() -> list[str]:  # the lazy names too, so `dir(ffcl)` and completion list them
    return sorted({*globals(), *__all__})
