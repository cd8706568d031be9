"""Contributor mode: many small contributors, a least-trusted service provider, compute servers.

A *session* (session.py, one TOML file) declares the contributors' table, the analytic (SQL
over that table, compiled by the ordinary compiler), the compute servers with their X25519
public keys, the recipients and ``min_contributors``. Contributors (the page in ``web/`` or
``sqlmpc contribute``, client.py) validate their rows, Shamir-share every value in MPyC's field
(field.py) and seal one share vector per server (sealing.py); the provider (provider.py, an
HTTP server over an SQLite store, store.py) keeps only the sealed boxes; at close the servers
(server.py) fetch and open their boxes and run the compiled analytic in MPyC over the shares
as they are (no re-sharing), suppressing cells with fewer than ``min_contributors``
contributors inside MPC. docs/contributors.md is the guide.
"""
