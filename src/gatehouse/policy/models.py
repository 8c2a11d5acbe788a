"""Security's vendor-risk veto, first part: which models may be used at all."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from gatehouse.errors import PermissionDenied


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """Approved model ids as globs (``claude-sonnet-*``); empty approves every model."""

    approved: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ModelPolicy:
        return cls(tuple(p.strip() for p in text.split(",") if p.strip()))

    def allows(self, model: str) -> bool:
        return not self.approved or any(fnmatch.fnmatchcase(model, p) for p in self.approved)

    def check(self, model: str) -> None:
        if self.allows(model):
            return
        raise PermissionDenied(
            f"Model {model!r} is not approved for use through Gatehouse. Approved: "
            f"{', '.join(self.approved)}. Choose one of those (claude --model, ANTHROPIC_MODEL) "
            "or ask your security team to approve this model."
        )
