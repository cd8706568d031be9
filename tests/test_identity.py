"""Deployment identities: the files make_test_identities writes, Identity.load's checks, and
real mutual-TLS handshakes over 127.0.0.1 with the contexts and peer checks of
sqlmpc.runtime.identity."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from sqlmpc.compiler.errors import SqlmpcError
from sqlmpc.runtime.identity import (
    DeploymentKeys,
    Identity,
    IdentityError,
    PeerNotAllowedError,
    client_context,
    make_test_identities,
    peer_identity,
    require_peer,
    server_context,
)

PARTIES = ["alice", "bob", "helper_3"]
ANALYSTS = ["ana"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> DeploymentKeys:
    return make_test_identities(tmp_path_factory.mktemp("deployment"), PARTIES, ANALYSTS)


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> DeploymentKeys:
    """Another deployment: its CA signs certificates with the same names."""
    return make_test_identities(tmp_path_factory.mktemp("other"), ["alice"], ["ana"])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- files --------------------------------------------------------------------------------------
def test_layout_is_deterministic(deployment):
    root = deployment.folder
    assert deployment.ca == root / "ca" / "ca.crt" and deployment.ca_key == root / "ca" / "ca.key"
    for p in PARTIES:
        ident = deployment.parties[p]
        assert (ident.role, ident.name) == ("party", p)
        assert ident.cert == root / p / "identity" / f"{p}.crt"
        assert ident.key == root / p / "identity" / f"{p}.key"
        assert ident.ca == root / p / "identity" / "ca.crt"
    ana = deployment.analysts["ana"]
    assert (ana.role, ana.cert, ana.key) == ("analyst", root / "analysts" / "ana" / "ana.crt",
                                             root / "analysts" / "ana" / "ana.key")
    assert ana.ca.read_bytes() == deployment.ca.read_bytes()


def test_private_keys_are_0600_in_0700_folders(deployment):
    keys = [deployment.ca_key] + [i.key for i in deployment.parties.values()] \
        + [i.key for i in deployment.analysts.values()]
    for key in keys:
        assert mode(key) == 0o600, key
        assert mode(key.parent) == 0o700, key.parent


def test_each_private_key_only_in_its_owners_folder(deployment):
    holders = {}
    for f in deployment.folder.rglob("*"):
        if f.is_file() and b"PRIVATE KEY" in f.read_bytes():
            holders[f.relative_to(deployment.folder).as_posix()] = f.read_bytes()
    expected = {"ca/ca.key"} | {f"{p}/identity/{p}.key" for p in PARTIES} \
        | {"analysts/ana/ana.key"}
    assert set(holders) == expected
    assert len(set(holders.values())) == len(expected)  # every key is a different key


def test_a_key_file_that_existed_is_rewritten_0600(tmp_path):
    home = tmp_path / "alice" / "identity"
    home.mkdir(parents=True, mode=0o755)
    (home / "alice.key").write_text("old")
    (home / "alice.key").chmod(0o644)
    keys = make_test_identities(tmp_path, ["alice"], [])
    assert mode(keys.parties["alice"].key) == 0o600 and mode(home) == 0o700
    assert Identity.load(home / "alice.crt", home / "alice.key", home / "ca.crt").name == "alice"


@pytest.mark.parametrize("parties, analysts, message", [
    (["a b"], [], ("identities: party name 'a b' is not a plain identifier (letters, digits and "
                  "_, not starting with a digit)")),
    (["alice"], ["1st"], ("identities: analyst name '1st' is not a plain identifier (letters, "
                         "digits and _, not starting with a digit)")),
    (["../x"], [], ("identities: party name '../x' is not a plain identifier (letters, digits "
                   "and _, not starting with a digit)")),
    ([""], [], ("identities: party name '' is not a plain identifier (letters, digits and _, "
               "not starting with a digit)")),
    (["älice"], [], ("identities: party name 'älice' is not a plain identifier (letters, "
                    "digits and _, not starting with a digit)")),
    (["alice", "alice"], [], "identities: party name 'alice' is given twice"),
    (["ca"], [], ("identities: a party may not be called 'ca' (a folder of that name holds the "
                 "CA or the analysts)")),
    (["analysts"], [], ("identities: a party may not be called 'analysts' (a folder of that "
                       "name holds the CA or the analysts)")),
    ([], ["ana"], "identities: a deployment needs at least one party"),
])
def test_bad_names_are_refused_before_anything_is_written(tmp_path, parties, analysts, message):
    with pytest.raises(IdentityError) as err:
        make_test_identities(tmp_path / "d", parties, analysts)
    assert str(err.value) == message
    assert not (tmp_path / "d").exists()


def test_bad_days(tmp_path):
    with pytest.raises(IdentityError, match="days must be a positive number of days, not 0"):
        make_test_identities(tmp_path, ["alice"], [], days=0)


def test_unwritable_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SqlmpcError) as err:
        make_test_identities(tmp_path / "file" / "deployment", ["alice"], [])
    assert str(err.value).startswith(f"identities: cannot write {tmp_path / 'file'}")
    assert "\n" not in str(err.value)


# --- Identity.load ------------------------------------------------------------------------------
def test_load_reads_role_and_name_from_the_certificate(deployment):
    ana = deployment.analysts["ana"]
    assert Identity.load(ana.cert, ana.key, deployment.ca) == Identity(
        "analyst", "ana", ana.cert, ana.key, deployment.ca)
    bob = deployment.parties["bob"]
    assert Identity.load(str(bob.cert), str(bob.key), str(bob.ca)) == bob


def test_load_refuses_a_missing_file(deployment, tmp_path):
    alice = deployment.parties["alice"]
    with pytest.raises(IdentityError) as err:
        Identity.load(tmp_path / "nope.crt", alice.key, alice.ca)
    assert str(err.value) == f"identity: {tmp_path / 'nope.crt'}: no such certificate file"
    with pytest.raises(IdentityError, match="no such private key file"):
        Identity.load(alice.cert, tmp_path / "nope.key", alice.ca)
    with pytest.raises(IdentityError, match="no such CA certificate file"):
        Identity.load(alice.cert, alice.key, tmp_path / "ca.crt")


def test_load_refuses_a_key_of_someone_else(deployment):
    alice, bob = deployment.parties["alice"], deployment.parties["bob"]
    with pytest.raises(IdentityError) as err:
        Identity.load(alice.cert, bob.key, alice.ca)
    assert str(err.value) == f"identity: {bob.key}: not the private key of {alice.cert}"


def test_load_refuses_a_certificate_of_another_ca(deployment, other):
    stranger = other.parties["alice"]
    with pytest.raises(IdentityError) as err:
        Identity.load(stranger.cert, stranger.key, deployment.ca)
    assert str(err.value) == f"identity: {stranger.cert}: not signed by the CA in {deployment.ca}"


def test_load_refuses_garbage_and_a_leaf_as_ca(deployment, tmp_path):
    alice = deployment.parties["alice"]
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(IdentityError, match=r"junk.pem: not a PEM certificate$"):
        Identity.load(tmp_path / "junk.pem", alice.key, alice.ca)
    with pytest.raises(IdentityError, match=r"junk.pem: not a PEM private key$"):
        Identity.load(alice.cert, tmp_path / "junk.pem", alice.ca)
    with pytest.raises(IdentityError, match=r"bob.crt: not a CA certificate$"):
        Identity.load(alice.cert, alice.key, deployment.parties["bob"].cert)


def test_load_refuses_a_certificate_without_a_member_uri(deployment):
    with pytest.raises(IdentityError) as err:  # the CA's own certificate names no member
        Identity.load(deployment.ca, deployment.ca_key, deployment.ca)
    assert str(err.value) == (f"identity: {deployment.ca}: the certificate must carry one URI "
                              "sqlmpc:party:<name> or sqlmpc:analyst:<name> (found none)")


# --- TLS ----------------------------------------------------------------------------------------
def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, on_server=peer_identity):
    """One connection over 127.0.0.1: the server thread runs on_server(tls socket) after its
    handshake and sends b"ok"; returns (server outcome, client outcome, client's peer or None,
    the TLS version) where an outcome is a value, or the exception raised."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    result: dict = {}

    def serve():
        try:
            raw, _ = listener.accept()
            raw.settimeout(10)
            with server_ctx.wrap_socket(raw, server_side=True) as tls:
                result["server"] = on_server(tls)
                tls.sendall(b"ok")
        except Exception as e:  # noqa: BLE001 -- whatever the server raised is the outcome
            result["server"] = e

    thread = threading.Thread(target=serve)
    thread.start()
    client_peer = version = None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client_ctx.wrap_socket(raw) as tls:
            client_peer, version = peer_identity(tls), tls.version()
            client = tls.recv(2)  # with TLS 1.3 a refused client learns it here
    except Exception as e:  # noqa: BLE001 -- whatever the client raised is the outcome
        client = e
    thread.join(20)
    listener.close()
    assert not thread.is_alive()
    return result["server"], client, client_peer, version


def test_analyst_and_party_authenticate_each_other(deployment):
    server, client, client_peer, version = handshake(
        server_context(deployment.parties["alice"]), client_context(deployment.analysts["ana"]))
    assert server == ("analyst", "ana")
    assert client_peer == ("party", "alice") and client == b"ok"
    assert version == "TLSv1.3"


def test_party_to_party_over_tls_1_2(deployment):
    client_ctx = client_context(deployment.parties["bob"])
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    server, client, client_peer, version = handshake(
        server_context(deployment.parties["helper_3"]), client_ctx)
    assert server == ("party", "bob") and client_peer == ("party", "helper_3")
    assert client == b"ok" and version == "TLSv1.2"


def test_contexts_trust_only_the_deployment_ca(deployment):
    for make in (server_context, client_context):
        ctx = make(deployment.parties["alice"])
        assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        cas = ctx.get_ca_certs()
        assert [dict(x[0] for x in c["subject"])["commonName"] for c in cas] \
            == ["sqlmpc deployment CA"]


def test_client_of_another_ca_is_refused(deployment, other):
    server, client, _, _ = handshake(server_context(deployment.parties["alice"]),
                                     client_context(other.analysts["ana"]))
    assert isinstance(server, ssl.SSLError)
    assert client != b"ok"


def test_client_without_a_certificate_is_refused(deployment):
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cafile=deployment.ca)
    server, client, _, _ = handshake(server_context(deployment.parties["alice"]), anonymous)
    assert isinstance(server, ssl.SSLError)
    assert "certificate" in str(server).lower()
    assert client != b"ok"


def test_server_of_another_ca_is_refused_by_the_client(deployment, other):
    server, client, client_peer, _ = handshake(server_context(other.parties["alice"]),
                                               client_context(deployment.analysts["ana"]))
    assert isinstance(client, ssl.SSLCertVerificationError) and client_peer is None
    assert isinstance(server, ssl.SSLError)


def test_require_peer_refuses_a_party_where_an_analyst_is_required(deployment):
    server, client, _, _ = handshake(
        server_context(deployment.parties["alice"]), client_context(deployment.parties["bob"]),
        on_server=lambda tls: require_peer(tls, "analyst", ["ana", "zed"]))
    assert isinstance(server, PeerNotAllowedError) and isinstance(server, PermissionError)
    assert str(server) == "the peer is party 'bob', not one of the allowed analysts ('ana', 'zed')"
    assert client != b"ok"


def test_require_peer_gives_the_allowed_name(deployment):
    server, client, _, _ = handshake(
        server_context(deployment.parties["alice"]), client_context(deployment.analysts["ana"]),
        on_server=lambda tls: require_peer(tls, "analyst", {"ana"}))
    assert server == "ana" and client == b"ok"
    server, _, _, _ = handshake(
        server_context(deployment.parties["alice"]), client_context(deployment.parties["bob"]),
        on_server=lambda tls: require_peer(tls, "party", ["alice"]))
    assert str(server) == "the peer is party 'bob', not one of the allowed parties ('alice')"
    server, _, _, _ = handshake(
        server_context(deployment.parties["alice"]), client_context(deployment.parties["bob"]),
        on_server=lambda tls: require_peer(tls, "party", []))
    assert str(server) == "the peer is party 'bob', and no party is allowed here"


def test_peer_identity_of_a_plain_socket_is_one_line():
    a, b = socket.socketpair()
    with a, b, pytest.raises(IdentityError, match="^the connection is not a TLS connection$"):
        peer_identity(a)
