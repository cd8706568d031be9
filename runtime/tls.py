"""Certificates for `--ssl` (MPyC's mutual TLS) when every party runs on this machine.

MPyC looks for `.config/party_<i>.crt`, `.config/party_<i>.key` and `.config/mpyc_ca.crt` in
its working folder and checks that party i's certificate names "MPyC party i". This module
makes a throwaway certificate authority and one key pair per party with the `openssl` command.
For a real deployment each party keeps its own key and the parties agree on a CA.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..compiler.errors import SqlmpcError


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise SqlmpcError(f"--ssl: openssl {args[0]} failed: {last}")


def make_certificates(folder: Path, parties: int) -> Path:
    """Write a CA and `parties` certificates under folder/.config; return folder."""
    if shutil.which("openssl") is None:
        raise SqlmpcError("--ssl needs the openssl command to make certificates "
                          "(install it: apt-get install openssl)")
    conf = folder / ".config"
    conf.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=MPyC CA", "-keyout", "mpyc_ca.key", "-out", "mpyc_ca.crt", cwd=conf)
    for i in range(parties):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=MPyC party {i}",
                 "-keyout", f"party_{i}.key", "-out", f"party_{i}.csr", cwd=conf)
        _openssl("x509", "-req", "-in", f"party_{i}.csr", "-CA", "mpyc_ca.crt", "-CAkey",
                 "mpyc_ca.key", "-CAcreateserial", "-days", "2", "-out", f"party_{i}.crt",
                 cwd=conf)
    return folder
