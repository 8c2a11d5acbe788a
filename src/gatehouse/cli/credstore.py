"""The developer's stored login: which gateway, as whom, and the login credential.

Written by `gatehouse login`, read by `gatehouse key-helper` (every few minutes,
so this module imports only the standard library) and removed by
`gatehouse logout`.  The file is ``$XDG_CONFIG_HOME/gatehouse/credentials.json``
(``~/.config/gatehouse/credentials.json`` without it), created ``0600`` in a
``0700`` directory.  When the optional ``keyring`` package is installed and
has a working backend, the credential itself goes to the OS keyring and the
file only says so.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYRING_SERVICE = "gatehouse"
_IN_KEYRING = "keyring"


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored login."""

    gateway_url: str
    secret: str  # the ``ghr_`` login credential
    email: str


class CredstoreError(Exception):
    """The stored login exists but cannot be read (say so; do not guess)."""


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gatehouse"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def save(gateway_url: str, secret: str, email: str, *, use_keyring: bool | None = None) -> Path:
    """Store the login (replacing any earlier one) and return the file written.

    ``use_keyring``: ``None`` uses the OS keyring when one works, ``False`` never.
    """
    gateway_url = gateway_url.rstrip("/")
    data: dict[str, Any] = {"gateway_url": gateway_url, "email": email}
    keyring = _keyring() if use_keyring is not False else None
    if keyring is not None:
        try:
            keyring.set_password(KEYRING_SERVICE, _account(gateway_url, email), secret)
            data["secret"] = None
            data["store"] = _IN_KEYRING
        except Exception:  # noqa: BLE001 - any backend failure: fall back to the file
            keyring = None
    if keyring is None:
        data["secret"] = secret
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    tmp.replace(path)
    return path


def load() -> Stored | None:
    """The stored login, or ``None`` when there is none."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CredstoreError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CredstoreError(f"{path} is not a Gatehouse login file")
    gateway_url, email = data.get("gateway_url"), data.get("email")
    secret = data.get("secret")
    if not isinstance(gateway_url, str) or not isinstance(email, str):
        raise CredstoreError(f"{path} is not a Gatehouse login file")
    if data.get("store") == _IN_KEYRING:
        keyring = _keyring()
        if keyring is None:
            raise CredstoreError(f"{path} says the credential is in the OS keyring, which is away")
        secret = keyring.get_password(KEYRING_SERVICE, _account(gateway_url, email))
        if secret is None:
            return None
    if not isinstance(secret, str) or not secret:
        return None
    return Stored(gateway_url=gateway_url, secret=secret, email=email)


def delete() -> bool:
    """Forget the stored login; ``False`` when there was none."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        data = {}
    if isinstance(data, dict) and data.get("store") == _IN_KEYRING:
        keyring = _keyring()
        if keyring is not None:
            with contextlib.suppress(Exception):
                keyring.delete_password(
                    KEYRING_SERVICE, _account(str(data.get("gateway_url")), str(data.get("email")))
                )
    path.unlink(missing_ok=True)
    return True


def _account(gateway_url: str, email: str) -> str:
    return f"{email}@{gateway_url}"


def _keyring() -> Any:
    """The ``keyring`` module when installed with a usable backend, else ``None``."""
    try:
        import keyring  # type: ignore[import-not-found]
        from keyring.backends import fail  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken backend is no backend
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    return keyring
