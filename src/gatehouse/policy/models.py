"""Security's vendor-risk veto, first part: which models may be used at all."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

from gatehouse.errors import PermissionDenied
from gatehouse.payload import json_object


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


def models_in(body: bytes, content_type: str) -> Iterator[str]:
    """Models a JSON request names: ``model``, and ``requests[].params.model`` (batches)."""
    if not body or not content_type.startswith("application/json"):
        return
    data = json_object(body)
    if data is None:
        return
    if isinstance(data.get("model"), str):
        yield data["model"]
    requests = data.get("requests")
    if isinstance(requests, list):
        for item in requests:
            params = item.get("params") if isinstance(item, dict) else None
            if isinstance(params, dict) and isinstance(params.get("model"), str):
                yield params["model"]
