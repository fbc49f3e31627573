"""Settings as dataclasses that read and write themselves as plain dicts (Chapter 4).

The model's :class:`~book.model.GPTConfig` and the training run's
:class:`~book.training.TrainConfig` are stored in checkpoints as JSON; reading one back refuses
a name it does not know, with the error class of its own area, instead of ignoring it.
"""
from __future__ import annotations

import dataclasses

from book.errors import BookError


class Settings:
    """Mixin for a settings dataclass: ``to_dict`` and a ``from_dict`` that refuses unknown names."""

    unknown_error: type[BookError] = BookError  # the area's error class
    kind: str = "settings"  # how the error names them, e.g. "model settings"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise cls.unknown_error(f"unknown {cls.kind}: {', '.join(unknown)}")
        return cls(**values)
