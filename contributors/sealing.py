"""X25519 key pairs of the compute servers and the sealed boxes that carry their shares.

A sealed box (libsodium crypto_box_seal, PyNaCl's SealedBox) is anonymous public-key
encryption: anyone can seal to a server's public key, only that server's private key opens it,
and the box is authenticated (a changed byte fails to open). Key files hold base64 text; the
private key file is created 0600 and never overwritten.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from ..compiler.errors import SqlmpcError


class KeyFileError(SqlmpcError):
    """A key file is missing, unreadable or not an X25519 key."""


def make_server_keys(name: str, out: Path) -> tuple[Path, Path]:
    """Write OUT/NAME.key (private, 0600) and OUT/NAME.pub; the two paths."""
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / f"{name}.key", out / f"{name}.pub"
    if private.exists():
        raise KeyFileError(f"{private} exists; not overwritten (remove it to make a new key)")
    key = PrivateKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(bytes(key)).decode() + "\n")
    public.write_text(base64.b64encode(bytes(key.public_key)).decode() + "\n")
    return private, public


def load_private_key(path: Path) -> PrivateKey:
    """A server's private key from its file (refused if others may read it)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
    if mode & 0o077:
        raise KeyFileError(f"key file {path} is readable by others (chmod 600 it)")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"key file {path} is not base64") from None
    if len(raw) != 32:
        raise KeyFileError(f"key file {path} is not an X25519 private key (32 bytes)")
    return PrivateKey(raw)


def seal(payload: dict, public_key: bytes) -> str:
    """The JSON payload sealed to `public_key`, as base64 text."""
    box = SealedBox(PublicKey(public_key)).encrypt(json.dumps(payload).encode())
    return base64.b64encode(box).decode()


def unseal(box_b64: str, key: PrivateKey) -> bytes:
    """The plaintext of a sealed box; ValueError if it is not one for this key."""
    try:
        return SealedBox(key).decrypt(base64.b64decode(box_b64, validate=True))
    except (binascii.Error, CryptoError, ValueError) as e:
        raise ValueError(f"not a sealed box for this server ({type(e).__name__})") from None
