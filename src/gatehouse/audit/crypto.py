"""Audit block contents at rest: zlib compression, and AES-256-GCM over a keyring file.

A block's ``key_id`` says how its ``content`` is encoded: ``""`` the canonical
bytes as they are, ``"z"`` zlib-compressed, ``"<key id>"`` encrypted, and
``"z:<key id>"`` compressed then encrypted.  `seal` encodes, `plaintext`
decodes; blocks under ``MIN_COMPRESS`` bytes, or that compress by less than
a tenth, are left uncompressed.

The keyring (``GATEHOUSE_AUDIT_KEY_FILE``) holds one base64-encoded 32-byte key
per line; blank lines and ``#`` comments are ignored.  The first key encrypts,
every key decrypts, so a key is rotated by putting the new one first and
keeping the old ones below.  A key's id — stored with each block — is the
first 16 hex digits of the SHA-256 of the key.  The block's digest is the
associated data, so a ciphertext moved to another block fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import zlib
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gatehouse.errors import GatewayError

NONCE_BYTES = 12
KEY_BYTES = 32
MIN_COMPRESS = 256
COMPRESSED = "z"


class AuditKeyError(GatewayError):
    """The audit keyring is unusable, or a block cannot be decrypted with it."""

    status = 500
    error_type = "api_error"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def new_key_line() -> str:
    """A fresh key, as one line of a keyring file."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


class Keyring:
    """AES-256-GCM keys by id; the first one encrypts."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise AuditKeyError("the audit keyring holds no key")
        if any(len(k) != KEY_BYTES for k in keys):
            raise AuditKeyError(f"every audit key must be {KEY_BYTES} bytes (base64 encoded)")
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.current = key_id(keys[0])

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read a keyring file (the error never quotes the file's content)."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the audit key file {path}: {exc.strerror}") from exc
        keys = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                keys.append(base64.b64decode(line, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise AuditKeyError(f"line {number} of {path} is not a base64 key") from exc
        return cls(keys)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def encrypt(self, digest: str, plaintext: bytes) -> tuple[str, bytes]:
        """``(key id, nonce || ciphertext)`` of a block's canonical bytes."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current].encrypt(nonce, plaintext, digest.encode())
        return self.current, nonce + sealed

    def decrypt(self, digest: str, kid: str, blob: bytes) -> bytes:
        aead = self._keys.get(kid)
        if aead is None:
            raise AuditKeyError(
                f"block {digest[:12]} was encrypted with key {kid}, not in the keyring"
            )
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], digest.encode())
        except InvalidTag as exc:
            raise AuditKeyError(f"block {digest[:12]} does not decrypt with key {kid}") from exc


def seal(digest: str, raw: bytes, keyring: Keyring | None) -> tuple[str, bytes]:
    """``(key_id, content)`` to store for a block's canonical bytes (see the module doc)."""
    tag, body = "", raw
    if len(raw) >= MIN_COMPRESS:
        packed = zlib.compress(raw, 6)
        if len(packed) * 10 <= len(raw) * 9:
            tag, body = COMPRESSED, packed
    if keyring is None:
        return tag, body
    kid, sealed = keyring.encrypt(digest, body)
    return (f"{tag}:{kid}" if tag else kid), sealed


def plaintext(digest: str, kid: str, blob: bytes, keyring: Keyring | None) -> bytes:
    """A stored block's canonical bytes, decrypting and decompressing as its ``key_id`` says."""
    compressed = kid == COMPRESSED or kid.startswith(COMPRESSED + ":")
    if compressed:
        kid = kid[len(COMPRESSED) + 1 :]
    if not kid:
        data = bytes(blob)
    elif keyring is None:
        raise AuditKeyError(f"block {digest[:12]} is encrypted and no audit key file is set")
    else:
        data = keyring.decrypt(digest, kid, bytes(blob))
    if not compressed:
        return data
    try:
        return zlib.decompress(data)
    except zlib.error as exc:
        raise AuditKeyError(f"block {digest[:12]} is corrupt: it does not decompress") from exc
