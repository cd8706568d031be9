"""Sentinels on the wire: party a's column holds random 11-digit values; three `sqlmpc party`
processes compute a SUM over it, and every cross-party MPyC connection goes through a recording
TCP proxy started here (each party's catalog sends the others to the proxy in front of its
real port).

With identities (mutual TLS) the bytes on every link contain none of the values, nor a's
partial sum, in any encoding below. Without TLS no single link (one pair of parties) contains
them either -- they are secret-shared -- while the result is still right.
"""

from __future__ import annotations

import pickle
import secrets
import socket
import subprocess
import sys
import threading
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlmpc
from sqlmpc.runtime.identity import make_test_identities
from sqlmpc.runtime.workspace import free_port

PARTIES = ["a", "b", "c"]
SQL = "SELECT SUM(v) AS s FROM t"


def encodings(value: int) -> list[bytes]:
    """The ways a value could show up in MPyC's traffic: decimal text, 8-byte little and big
    endian, its shortest little and big endian bytes (as pickle writes an int), and the field
    element of MPyC's fixed-point encoding (value * 2^32, little endian as MPyC's
    field.to_bytes and pickled ints write it, and big endian)."""
    fixed = value << 32
    short, width = (value.bit_length() + 7) // 8, (fixed.bit_length() + 7) // 8
    return [str(value).encode(), value.to_bytes(8, "little"), value.to_bytes(8, "big"),
            value.to_bytes(short, "little"), value.to_bytes(short, "big"),
            fixed.to_bytes(width, "little"), fixed.to_bytes(width, "big")]


def test_the_encodings_find_a_value_where_it_is_sent_in_clear():
    """The search below would see a value sent as MPyC sends plain numbers."""
    v = 12345678901
    sent = [pickle.dumps(np.array([v << 32, 7], dtype=object)), pickle.dumps(v),
            np.array([v], dtype="<i8").tobytes(), f"x,{v}\n".encode()]
    for data in sent:
        assert any(e in data for e in encodings(v)), data


class Proxy:
    """Forwards every connection to 127.0.0.1:`target` and records each connection's bytes
    (both directions) separately: one connection is one link between two parties."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.links: list[dict[str, bytearray]] = []
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        # the party behind may not listen yet: wait for it (closing at once would look to a
        # plaintext dialler like a peer that connected and died)
        deadline = time.monotonic() + 60
        while True:
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    client.close()
                    return
                time.sleep(0.05)
        upstream.settimeout(None)
        link = {"to": bytearray(), "from": bytearray()}
        self.links.append(link)
        for src, dst, buf in ((client, upstream, link["to"]), (upstream, client, link["from"])):
            t = threading.Thread(target=self._pump, args=(src, dst, buf), daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, buf: bytearray) -> None:
        try:
            while data := src.recv(65536):
                buf.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()
        for t in self.threads:
            t.join(5)


def _write_data(folder: Path) -> list[int]:
    """a's and b's parts of table t; a's values are random 11-digit numbers (returned)."""
    sentinels = [10_000_000_000 + secrets.randbelow(90_000_000_000) for _ in range(12)]
    for party, values in (("a", sentinels), ("b", [5, 17, 23])):
        (folder / party).mkdir(parents=True, exist_ok=True)
        (folder / party / "t.csv").write_text("k,v\n" + "".join(
            f"{i},{v}\n" for i, v in enumerate(values)))
    return sentinels


def _catalog(folder: Path, ports: dict[str, int], identity: Path | None) -> str:
    lines = []
    if identity is not None:
        lines += ["[deployment]", f'identity = "{identity}"', ""]
    for p in PARTIES:
        lines += [f"[parties.{p}]", 'host = "127.0.0.1"', f"port = {ports[p]}", ""]
    lines += ["[tables.t]", 'columns = { k = "int", v = "int" }',
              f'parts = {{ a = "{folder / "a" / "t.csv"}", b = "{folder / "b" / "t.csv"}" }}',
              "", "[result]", 'recipients = ["c"]', ""]
    return "\n".join(lines)


def _run(tmp_path: Path, tls: bool) -> tuple[dict[str, str], list[dict], list[int]]:
    """Run the query over the proxies; (each party's stdout, the links, the sentinels)."""
    data = tmp_path / "data"
    sentinels = _write_data(data)
    real = {p: free_port() for p in PARTIES}
    (data / "catalog.toml").write_text(_catalog(data, real, None))
    order = sqlmpc.compile_sql(SQL, data / "catalog.toml", all_secure=True).compute_parties
    assert sorted(order) == PARTIES
    # MPyC: party i listens for the lower ids; the higher ids only dial
    proxies = {p: Proxy(real[p]) for p in order[1:]}
    keys = make_test_identities(tmp_path / "keys", PARTIES, []) if tls else None
    query = tmp_path / "q.sql"
    query.write_text(SQL)
    procs = {}
    try:
        for p in PARTIES:
            ports = {q: real[q] if q == p or q not in proxies else proxies[q].port
                     for q in PARTIES}
            identity = keys.parties[p].cert.parent if keys else None
            own = tmp_path / f"catalog_{p}.toml"
            own.write_text(_catalog(data, ports, identity))
            procs[p] = subprocess.Popen(
                [sys.executable, "-m", "sqlmpc", "party", p, str(query), "--catalog", str(own),
                 "--quiet", "--all-secure", *(["--ssl"] if tls else [])],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        outputs = {p: proc.communicate(timeout=300) for p, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for proxy in proxies.values():
            proxy.close()
    for p, proc in procs.items():
        assert proc.returncode == 0, (p, outputs[p][1])
    links = [link for proxy in proxies.values() for link in proxy.links]
    return {p: out for p, (out, _) in outputs.items()}, links, sentinels


def _found(data: bytes, secrets_: list[int]) -> list[int]:
    return [v for v in secrets_ if any(e in data for e in encodings(v))]


def _check_result(stdout: dict[str, str], sentinels: list[int]) -> None:
    result = pd.read_csv(StringIO(stdout["c"]))
    assert int(result["s"].iloc[0]) == sum(sentinels) + 5 + 17 + 23


@pytest.mark.slow
def test_with_tls_no_link_carries_a_sentinel(tmp_path):
    stdout, links, sentinels = _run(tmp_path, tls=True)
    _check_result(stdout, sentinels)
    assert len(links) == 3  # a-b, a-c, b-c: every link went through a proxy
    secret = sentinels + [sum(sentinels)]  # the values and a's partial sum
    for link in links:
        assert len(link["to"]) > 1000 and len(link["from"]) > 1000
        assert link["to"][:2] == b"\x16\x03"  # a TLS handshake, not MPyC's plaintext framing
        assert _found(bytes(link["to"] + link["from"]), secret) == []
    everything = b"".join(bytes(link["to"] + link["from"]) for link in links)
    assert _found(everything, secret) == []


@pytest.mark.slow
def test_without_tls_no_single_link_carries_a_sentinel(tmp_path):
    stdout, links, sentinels = _run(tmp_path, tls=False)
    _check_result(stdout, sentinels)
    assert len(links) == 3
    for link in links:
        # plaintext MPyC: the dialling party announces its id (a lower one) in 2 bytes
        assert int.from_bytes(link["to"][:2], "little") in (0, 1)
        assert _found(bytes(link["to"] + link["from"]), sentinels + [sum(sentinels)]) == []
