"""Path rules inside an allowed repository: redact or block tool results by file path.

Pure.  Claude Code sends a file's content to the model as a ``tool_result``
answering a ``tool_use`` (``Read``, ``Grep``, ``Bash cat …``) that names the
path.  `apply_path_rules` pairs every ``tool_result`` in the body with its
``tool_use`` (by ``tool_use_id``, across messages), works out the paths it
exposes, matches them against the repository's rules (`PathRules`, compiled
once per rule set) and either

* **redacts**: the result's content becomes a marker naming the rule and the
  path (never the content), or
* **blocks**: the request is refused (`PathOutcome.blocked`).

Every matching result in the body is rewritten, not only the newest: Claude
Code resends the whole history each turn and the upstream saw the redacted
version last turn, so the same block must be rewritten the same way again.
The marker depends only on the rule and the path, and the new body is
spliced from the original bytes (only the rewritten blocks change), so earlier
bytes stay identical turn after turn and the prompt cache stays valid.

Listings (``Glob``, ``LS``, ``Grep`` in ``files_with_matches``/``count``
mode) carry file names, not content: a matching entry is replaced by a marker
line and the rest of the listing is kept, whatever the rule's action.
Grep's ``content`` lines (and a Bash ``grep``/``rg``'s output) are content:
a matching line is replaced under ``redact`` and refuses the request under
``block``.  Paths are matched relative to the checkout root; a path outside
it (or with no root known) matches a rule if any of its tails does, as if
the glob began with ``**/``.  Matching ignores case (a case-insensitive file
system must not be a way around a rule).
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gatehouse.events import Event
from gatehouse.policy.document import PathRule
from gatehouse.policy.pathmatch import CACHE_LIMIT, PathRuleHit, PathRules
from gatehouse.policy.repo_claims import checkout_root, working_directory

PATH_EVENT = "path_rule_applied"
_FILE_TOOLS = {
    "Read": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "Write": "file_path",
    "NotebookRead": "notebook_path",
    "NotebookEdit": "notebook_path",
}
_LISTING_TOOLS = frozenset({"Grep", "Glob", "LS"})
# ripgrep/grep output: "path:12:text", "path-12-text" (context), "path:text".
_LINE_PATH = re.compile(r"^(.+?)[:-]\d+[:-]")


@dataclass(frozen=True, slots=True)
class PathOutcome:
    """The body to forward (the original bytes when nothing matched) and what was done."""

    body: bytes
    applied: tuple[PathRuleHit, ...] = ()
    blocked: PathRuleHit | None = None


@dataclass(slots=True)
class _Scan:
    rules: PathRules
    root: str
    cwd: str
    hits: list[PathRuleHit] = field(default_factory=list)
    blocked: PathRuleHit | None = None

    def locate(self, raw: str, *, directory: bool = False) -> tuple[str, PathRule | None]:
        """``raw`` as shown in a marker, and the rule it matches.

        A ``directory`` (what Grep or Glob searched) also matches the rules of what
        it contains: ``secrets`` is covered by ``secrets/**``.
        """
        shown, rule = self._locate(raw)
        if rule is None and directory and shown:
            inside, rule = self._locate(shown.rstrip("/") + "/\x00")
            if rule is not None and not inside.startswith("/"):
                shown = inside[:-2]
        return shown, rule

    def _locate(self, raw: str) -> tuple[str, PathRule | None]:
        path = raw.strip().replace("\\", "/")
        if not path:
            return path, None
        if path.startswith("~"):
            return path, self.rules.match_anywhere(path)
        if not path.startswith("/") and self.cwd:
            path = posixpath.join(self.cwd, path)
        path = posixpath.normpath(path)
        if path == self.root:
            return path, None
        if self.root and path.startswith(self.root + "/"):
            relative = path[len(self.root) + 1 :]
            return relative, self.rules.match(relative)
        if not path.startswith("/"):
            return path, self.rules.match(path)  # relative, no root known
        return path, self.rules.match_anywhere(path)


def apply_path_rules(
    body: bytes, parsed: Mapping[str, Any], rules: PathRules, *, root: str | None = None
) -> PathOutcome:
    """Rewrite (or block) the tool results ``rules`` match; see the module docstring."""
    messages = parsed.get("messages")
    if not rules or not isinstance(messages, list):
        return PathOutcome(body)
    checkout = checkout_root(parsed) if root is None else root
    cwd = working_directory(parsed)
    scan = _Scan(rules, checkout, cwd if cwd.startswith("/") else checkout)
    newest = max((i for i, m in enumerate(messages) if _role(m) == "assistant"), default=-1)
    uses: dict[str, tuple[str, Mapping[str, Any]]] = {}
    changed: list[tuple[int, int, dict[str, Any]]] = []
    for mi, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for bi, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "tool_use":
                name, tool_input = block.get("name"), block.get("input")
                if isinstance(name, str) and isinstance(tool_input, dict):
                    uses[str(block.get("id"))] = (name, tool_input)
            elif kind == "tool_result":
                use = uses.get(str(block.get("tool_use_id")))
                if use is None:
                    continue
                content_after = _judge(scan, use, block, new=mi > newest)
                if scan.blocked is not None:
                    return PathOutcome(body, tuple(scan.hits), scan.blocked)
                if content_after is not None:
                    changed.append((mi, bi, {**block, "content": content_after}))
    if not changed:
        return PathOutcome(body, tuple(scan.hits))
    return PathOutcome(_rewrite(body, parsed, messages, changed), tuple(scan.hits))


def _judge(
    scan: _Scan, use: tuple[str, Mapping[str, Any]], block: Mapping[str, Any], *, new: bool
) -> Any:
    """The tool result's new content, or None to keep it; records hits on ``scan``."""
    tool, tool_input = use
    tool_use_id = str(block.get("tool_use_id"))
    whole: list[str] = []
    lines_are_content = False
    if tool in _FILE_TOOLS:
        whole = [tool_input.get(_FILE_TOOLS[tool])]  # type: ignore[list-item]
    elif tool in _LISTING_TOOLS:
        if isinstance(tool_input.get("path"), str):
            whole = [tool_input["path"]]
        lines_are_content = tool == "Grep" and tool_input.get("output_mode") == "content"
    elif tool == "Bash" and isinstance(tool_input.get("command"), str):
        whole, lines_are_content = scan.rules.command_paths(tool_input["command"])
    else:
        return None
    best: tuple[str, PathRule] | None = None
    for raw in whole:
        if not isinstance(raw, str):
            continue
        shown, rule = scan.locate(raw, directory=tool in _LISTING_TOOLS)
        if rule is not None and (best is None or _stricter(rule, best[1])):
            best = (shown, rule)
            if rule.action == "block":
                break
    if best is not None:
        shown, rule = best
        hit = PathRuleHit(rule.label, rule.glob, rule.action, shown, tool, tool_use_id, new)
        scan.hits.append(hit)
        # A listing (Glob, LS, Grep's file names) carries no content: withheld, not refused.
        if rule.action == "block" and (tool not in _LISTING_TOOLS or lines_are_content):
            scan.blocked = hit
            return None
        return content_marker(rule, shown)
    if tool in _FILE_TOOLS or (tool == "Bash" and not lines_are_content):
        return None
    # Scanning a listing line by line is the costly part: remember each result's rewrite.
    content = block.get("content")
    key = (scan.root, scan.cwd, tool, lines_are_content, tool_use_id, _digest(content))
    cached = scan.rules.rewrites.get(key)
    if cached is None:
        before = len(scan.hits)
        found = _filter_lines(scan, content, tool, tool_use_id, lines_are_content, False)
        cached = (found, tuple(scan.hits[before:]), scan.blocked)
        del scan.hits[before:]
        scan.blocked = None
        if len(scan.rules.rewrites) >= CACHE_LIMIT // 16:
            scan.rules.rewrites.clear()
        scan.rules.rewrites[key] = cached
    found, hits, blocked = cached
    scan.hits.extend(dataclasses.replace(h, new=new) for h in hits)
    if blocked is not None:
        scan.blocked = dataclasses.replace(blocked, new=new)
    return found


def _digest(content: Any) -> tuple[int, int]:
    """A cache key for a result's content: a reused id with other content misses."""
    if isinstance(content, str):
        return len(content), hash(content)
    if isinstance(content, list):
        texts = tuple(b.get("text") if isinstance(b, dict) else None for b in content)
        return len(texts), hash(texts)
    return -1, 0


def _stricter(rule: PathRule, than: PathRule) -> bool:
    return rule.action == "block" and than.action != "block"


def _filter_lines(
    scan: _Scan, content: Any, tool: str, tool_use_id: str, is_content: bool, new: bool
) -> Any:
    def rewrite(text: str) -> str | None:
        out: list[str] = []
        touched = False
        for line in text.split("\n"):
            found = _line_rule(scan, line)
            if found is None:
                out.append(line)
                continue
            shown, rule = found
            hit = PathRuleHit(rule.label, rule.glob, rule.action, shown, tool, tool_use_id, new)
            if is_content and rule.action == "block":
                scan.hits.append(hit)
                scan.blocked = hit
                return None
            if hit not in scan.hits:
                scan.hits.append(hit)
            marker = line_marker(rule, shown)
            touched = True
            if not out or out[-1] != marker:
                out.append(marker)
        return "\n".join(out) if touched else None

    if isinstance(content, str):
        return rewrite(content)
    if not isinstance(content, list):
        return None
    blocks: list[Any] = []
    touched = False
    for item in content:
        text = item.get("text") if isinstance(item, dict) else None
        new_text = rewrite(text) if isinstance(text, str) else None
        if scan.blocked is not None:
            return None
        touched = touched or new_text is not None
        blocks.append({**item, "text": new_text} if new_text is not None else item)
    return blocks if touched else None


def _line_rule(scan: _Scan, line: str) -> tuple[str, PathRule] | None:
    line = line.strip()
    if not line:
        return None
    # The path part only: a marker must never carry the line's content.
    candidates = []
    numbered = _LINE_PATH.match(line)
    if numbered:
        candidates.append(numbered.group(1))
    colon = line.find(":")
    if colon > 0:
        candidates.append(line[:colon])
    if not candidates and len(line) <= 4096:
        candidates.append(line)  # a listing entry: the whole line is the path
    for raw in candidates:
        shown, rule = scan.locate(raw)
        if rule is not None:
            return shown, rule
    return None


def content_marker(rule: PathRule, path: str) -> str:
    """What replaces a withheld result: the rule and the path, never the content."""
    return f'[gatehouse: content of {path} withheld by path rule "{rule.label}" ({rule.action})]'


def line_marker(rule: PathRule, path: str) -> str:
    return f'[gatehouse: {path} withheld by path rule "{rule.label}" ({rule.action})]'


def blocked_message(hit: PathRuleHit, repository: str) -> str:
    """The 403 a developer reads: the rule and the path, never the content."""
    where = f" of {repository}" if repository else ""
    return (
        f'Gatehouse blocked this request: path rule "{hit.rule}"{where} forbids sending '
        f"{hit.path} ({hit.tool}) to the model provider. Start a new session (or /clear) "
        "without that file's content, or ask your security team about the rule."
    )


def path_events(
    outcome: PathOutcome, *, developer: str, team: str, repository: str, session_id: str
) -> list[Event]:
    """One ``path_rule_applied`` event per rule applied to a block new in this turn."""
    return [
        Event(
            kind=PATH_EVENT,
            subject=f'path rule "{hit.rule}" ({hit.action}) applied to {hit.path} ({hit.tool})',
            severity="warning" if hit.action == "block" else "info",
            developer=developer,
            team=team,
            repository=repository,
            session_id=session_id,
            detail={
                "rule": hit.rule,
                "glob": hit.glob,
                "action": hit.action,
                "path": hit.path,
                "tool": hit.tool,
                "tool_use_id": hit.tool_use_id,
            },
        )
        for hit in outcome.applied
        if hit.new or hit is outcome.blocked
    ]


# -- the new body ------------------------------------------------------------------------


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _rewrite(
    body: bytes,
    parsed: Mapping[str, Any],
    messages: list[Any],
    changed: list[tuple[int, int, dict[str, Any]]],
) -> bytes:
    """Splice each rewritten block into the original bytes; re-serialise only if that fails.

    Splicing keeps every other byte as the client sent it (the prompt cache keys on
    bytes).  It needs the block's original serialisation to be found verbatim,
    which holds for the compact JSON Claude Code sends.
    """
    pieces: list[bytes] = []
    cursor = 0
    for mi, bi, new_block in changed:
        old = orjson.dumps(messages[mi]["content"][bi])
        at = body.find(old, cursor)
        if at < 0:
            return _reserialise(parsed, messages, changed)
        pieces += (body[cursor:at], orjson.dumps(new_block))
        cursor = at + len(old)
    pieces.append(body[cursor:])
    return b"".join(pieces)


def _reserialise(
    parsed: Mapping[str, Any],
    messages: list[Any],
    changed: list[tuple[int, int, dict[str, Any]]],
) -> bytes:
    new_messages = list(messages)
    for mi, bi, new_block in changed:
        message = new_messages[mi]
        if message is messages[mi]:
            message = new_messages[mi] = {**message, "content": list(message["content"])}
        message["content"][bi] = new_block
    return orjson.dumps({**parsed, "messages": new_messages})
