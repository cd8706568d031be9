"""Identities of a deployment: who may connect to a party, told apart by certificate.

Every party and every analyst of a deployment has an EC key pair (P-256) and a certificate
signed by the deployment's certificate authority (CA). A certificate names its holder twice:
the common name (CN=<name>) for people reading it, and a URI subject alternative name that
sqlmpc checks -- ``sqlmpc:party:<name>`` or ``sqlmpc:analyst:<name>``. Connections are
mutual TLS (1.2 or newer; 1.3 when both ends have it) that trust the deployment CA and
nothing else; host names are not checked, the peer's role and name from its verified
certificate are (:func:`peer_identity`, :func:`require_peer`).

Layout written by :func:`make_test_identities` (a throwaway CA, for tests and local runs; a
real deployment's CA signs each member's request elsewhere and hands back the certificate):

    <folder>/ca/ca.crt, ca.key                       the CA (folder 0700, key 0600)
    <folder>/<party>/identity/<party>.crt, .key      each party's (0700 / 0600), and ca.crt
    <folder>/analysts/<name>/<name>.crt, .key        each analyst's (0700 / 0600), and ca.crt

Each private key is written only into its owner's folder; every owner gets a copy of the CA
certificate (public) so that its folder alone is enough to connect.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import ssl
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..compiler.errors import SqlmpcError

__all__ = ["ROLES", "DeploymentKeys", "Identity", "IdentityError", "PeerNotAllowedError",
           "client_context", "make_test_identities", "peer_identity", "require_peer",
           "server_context"]

ROLES = ("party", "analyst")
URI_SCHEME = "sqlmpc"
_PLURAL = {"party": "parties", "analyst": "analysts"}
# A member's name: it becomes a folder, a file name and part of a URI.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Folder names under the deployment folder that a party may not take.
_RESERVED_PARTY_NAMES = frozenset({"ca", "analysts"})
# TLS 1.2 suites: forward-secret ECDHE with AEAD only (TLS 1.3 suites are all of that kind).
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# Certificates start a little in the past, so that clocks a few minutes apart agree.
_CLOCK_SKEW = dt.timedelta(minutes=5)


class IdentityError(SqlmpcError):
    """A key, a certificate or a peer's identity is missing, malformed or not trusted."""


class PeerNotAllowedError(SqlmpcError, PermissionError):
    """The peer proved who it is, but it is not one of those allowed to connect here."""


@dataclass(frozen=True)
class Identity:
    """One member of a deployment: its role, name, certificate, private key and the CA."""

    role: str
    name: str
    cert: Path
    key: Path
    ca: Path

    @classmethod
    def load(cls, cert: str | Path, key: str | Path, ca: str | Path) -> Identity:
        """Read and check an identity: the certificate is signed by the CA and valid now, the
        key matches it, and its URI names the role and name. One-line errors name the file."""
        cert, key, ca = Path(cert), Path(key), Path(ca)
        ca_cert = _read_certificate(ca, "CA certificate")
        own = _read_certificate(cert, "certificate")
        private = _read_private_key(key)
        if not _is_ca(ca_cert):
            raise IdentityError(f"identity: {ca}: not a CA certificate")
        try:
            own.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise IdentityError(f"identity: {cert}: not signed by the CA in {ca}") from None
        now = dt.datetime.now(dt.UTC)
        if not own.not_valid_before_utc <= now <= own.not_valid_after_utc:
            raise IdentityError(f"identity: {cert}: valid only from "
                                f"{own.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                                f"{own.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        if _public_der(private.public_key()) != _public_der(own.public_key()):
            raise IdentityError(f"identity: {key}: not the private key of {cert}")
        role, name = _member_of(_uris_of(own), where=f"identity: {cert}")
        return cls(role, name, cert, key, ca)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Identity:
        """The identity kept in one folder: exactly one `<name>.crt` with its `<name>.key`,
        and the deployment's `ca.crt` (the layout make_test_identities writes)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise IdentityError(f"identity: {folder}: no such folder")
        certs = [c for c in sorted(folder.glob("*.crt")) if c.name != "ca.crt"]
        if len(certs) != 1:
            raise IdentityError(f"identity: {folder}: holds {len(certs)} certificates besides "
                                f"ca.crt (one <name>.crt with its <name>.key expected)")
        return cls.load(certs[0], certs[0].with_suffix(".key"), folder / "ca.crt")


@dataclass(frozen=True)
class DeploymentKeys:
    """What make_test_identities wrote: the CA and every member's identity, by name."""

    folder: Path
    ca: Path
    ca_key: Path
    parties: dict[str, Identity] = field(default_factory=dict)
    analysts: dict[str, Identity] = field(default_factory=dict)


# --- making a throwaway deployment ----------------------------------------------------------
def make_test_identities(folder: Path, parties: list[str], analysts: list[str], *,
                         days: int = 365) -> DeploymentKeys:
    """Write a throwaway CA and one key pair and certificate per party and analyst.

    Names must be plain identifiers (letters, digits, _; not starting with a digit), unique
    within their role; a party may not be called "ca" or "analysts". Certificates are valid
    for `days` days. Existing files of the same names are replaced.
    """
    folder = Path(folder)
    _check_names(parties, analysts)
    if type(days) is not int or days < 1:
        raise IdentityError(f"identities: days must be a positive number of days, not {days!r}")
    now = dt.datetime.now(dt.UTC) - _CLOCK_SKEW
    until = now + dt.timedelta(days=days) + _CLOCK_SKEW
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sqlmpc deployment CA")])
    ca_cert = _ca_certificate(ca_key, ca_name, now, until)
    members = [("party", p, folder / p / "identity") for p in parties]
    members += [("analyst", a, folder / "analysts" / a) for a in analysts]
    try:
        ca_dir = _private_folder(folder / "ca")
        _write_private_key(ca_dir / "ca.key", ca_key)
        _write_certificate(ca_dir / "ca.crt", ca_cert)
        made: dict[str, dict[str, Identity]] = {"party": {}, "analyst": {}}
        for role, name, home in members:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _member_certificate(role, name, key, ca_key, ca_cert, now, until)
            home = _private_folder(home)
            _write_private_key(home / f"{name}.key", key)
            _write_certificate(home / f"{name}.crt", cert)
            _write_certificate(home / "ca.crt", ca_cert)
            made[role][name] = Identity(role, name, home / f"{name}.crt", home / f"{name}.key",
                                        home / "ca.crt")
    except OSError as e:
        where = e.filename or folder
        raise IdentityError(f"identities: cannot write {where}: {e.strerror or e}") from None
    return DeploymentKeys(folder, ca_dir / "ca.crt", ca_dir / "ca.key", made["party"],
                          made["analyst"])


def _check_names(parties: list[str], analysts: list[str]) -> None:
    if not parties:
        raise IdentityError("identities: a deployment needs at least one party")
    for role, names in (("party", parties), ("analyst", analysts)):
        seen: set[str] = set()
        for name in names:
            if not isinstance(name, str) or not _NAME.match(name):
                raise IdentityError(f"identities: {role} name {name!r} is not a plain identifier "
                                    "(letters, digits and _, not starting with a digit)")
            if name in seen:
                raise IdentityError(f"identities: {role} name {name!r} is given twice")
            if role == "party" and name in _RESERVED_PARTY_NAMES:
                raise IdentityError(f"identities: a party may not be called {name!r} (a folder "
                                    "of that name holds the CA or the analysts)")
            seen.add(name)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, name: x509.Name, start: dt.datetime,
                    until: dt.datetime) -> x509.Certificate:
    public = key.public_key()
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))


def _member_certificate(role: str, name: str, key: ec.EllipticCurvePrivateKey,
                        ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                        start: dt.datetime, until: dt.datetime) -> x509.Certificate:
    """A party's or analyst's certificate: TLS server and client (a party is both)."""
    public = key.public_key()
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"{URI_SCHEME}:{role}:{name}")]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))


def _private_folder(path: Path) -> Path:
    """A folder only its owner can enter (0700), made if missing."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write key as unencrypted PKCS#8 PEM, readable by its owner only (0600) from the start."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)  # a file that existed before keeps its mode otherwise
        fh.write(pem)


def _write_certificate(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


# --- reading and checking ---------------------------------------------------------------------
def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(f"identity: {path}: no such {what} file") from None
    except OSError as e:
        raise IdentityError(f"identity: {path}: cannot read the {what}: {e.strerror or e}") \
            from None


def _read_certificate(path: Path, what: str) -> x509.Certificate:
    data = _read_bytes(path, what)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise IdentityError(f"identity: {path}: not a PEM {what}") from None


def _read_private_key(path: Path) -> Any:
    data = _read_bytes(path, "private key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise IdentityError(f"identity: {path}: the private key is encrypted (sqlmpc reads "
                            "unencrypted PEM keys protected by file permissions)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise IdentityError(f"identity: {path}: not a PEM private key") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _uris_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def _member_of(uris: list[str], *, where: str) -> tuple[str, str]:
    """(role, name) from a certificate's URIs: exactly one must be sqlmpc:<role>:<name>."""
    ours = [u for u in uris if u.startswith(f"{URI_SCHEME}:")]
    if len(ours) != 1:
        found = "none" if not ours else f"{len(ours)} of them"
        raise IdentityError(f"{where}: the certificate must carry one URI "
                            f"{URI_SCHEME}:party:<name> or {URI_SCHEME}:analyst:<name> "
                            f"(found {found})")
    _, role, name = (ours[0].split(":", 2) + ["", ""])[:3]
    if role not in ROLES or not _NAME.match(name):
        raise IdentityError(f"{where}: the certificate's URI {ours[0]!r} is not "
                            f"{URI_SCHEME}:party:<name> or {URI_SCHEME}:analyst:<name>")
    return role, name


# --- TLS ---------------------------------------------------------------------------------------
def _context(identity: Identity, protocol: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.check_hostname = False  # identities are checked by their URI, not by host name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    try:
        ctx.load_cert_chain(identity.cert, identity.key)
    except (ssl.SSLError, OSError) as e:
        raise IdentityError(f"identity: {identity.cert} with {identity.key}: cannot be used "
                            f"for TLS: {getattr(e, 'reason', None) or e}") from None
    try:
        ctx.load_verify_locations(cafile=identity.ca)  # the deployment CA only, no system CAs
    except (ssl.SSLError, OSError) as e:
        raise IdentityError(f"identity: {identity.ca}: cannot be used as the CA: "
                            f"{getattr(e, 'reason', None) or e}") from None
    return ctx


def server_context(identity: Identity) -> ssl.SSLContext:
    """TLS for accepting connections: presents identity, requires a certificate from every
    client signed by the deployment CA."""
    return _context(identity, ssl.PROTOCOL_TLS_SERVER)


def client_context(identity: Identity) -> ssl.SSLContext:
    """TLS for connecting: presents identity, requires the server's certificate to be signed
    by the deployment CA (host names are not checked: check the peer with require_peer)."""
    return _context(identity, ssl.PROTOCOL_TLS_CLIENT)


def peer_identity(connection: Any) -> tuple[str, str]:
    """(role, name) of the peer of a TLS connection, from its verified certificate.

    connection: an ssl.SSLSocket, an ssl.SSLObject, or an asyncio transport or StreamWriter
    (anything with get_extra_info("ssl_object")).
    """
    tls = connection.get_extra_info("ssl_object") if hasattr(connection, "get_extra_info") \
        else connection
    if tls is None or not hasattr(tls, "getpeercert"):
        raise IdentityError("the connection is not a TLS connection")
    try:
        cert = tls.getpeercert()  # empty unless the peer's certificate was verified
    except ValueError:
        raise IdentityError("the TLS handshake with the peer has not completed") from None
    if not cert:
        raise IdentityError("the peer presented no verified certificate")
    uris = [value for kind, value in cert.get("subjectAltName", ()) if kind == "URI"]
    return _member_of(uris, where="the peer's certificate")


def require_peer(connection: Any, role: str, allowed: Collection[str]) -> str:
    """The peer's name if it is a `role` ("party" or "analyst") named in `allowed`; otherwise
    PeerNotAllowedError (a PermissionError) saying who the peer is."""
    if role not in ROLES:
        raise IdentityError(f"require_peer: role must be one of {', '.join(ROLES)}, not {role!r}")
    peer_role, name = peer_identity(connection)
    if peer_role == role and name in allowed:
        return name
    wanted = ", ".join(repr(a) for a in sorted(allowed))
    which = f"not one of the allowed {_PLURAL[role]} ({wanted})" if wanted \
        else f"and no {role} is allowed here"
    raise PeerNotAllowedError(f"the peer is {peer_role} {name!r}, {which}")
