"""What a deployment would take, estimated from runs on this one machine.

isolated (one machine per party, simulated): the parties' local jobs run one at a time, each
with this machine to itself and its engine warm (benchmarks.taxi.probe serialises them); the
secure part runs with all parties at once, as in any run. A deployment where each party has its
own machine would take

    launcher + max over parties (its time until its local job starts + its local job alone)
             + the secure part

launcher = the client's own work (compiling, asking the agents, reading the result); a party's
time until its job starts = from being asked to starting its job, less any wait for the lock.

--rtt MS adds the network between organisations: MS per communication round of the secure part
(the most rounds any party counted) plus one round for the client's request to the agents.
"""

from __future__ import annotations

#: what --isolated and --rtt model and leave out; printed under the table
ISOLATED_NOTE = (
    "isolated = one machine per party, simulated: the parties' local jobs run one at a time, "
    "each with this machine to itself and its engine warm; seconds = launcher + the slowest "
    "party's (time until its job starts + its job alone) + the secure part measured with all "
    "parties at once on this machine. It leaves out: the network between the organisations "
    "(see --rtt), that each party's machine differs from this one, and TLS (the benchmark's "
    "agents talk plaintext on loopback); its secure part still shares these cores among all "
    "parties.")
RTT_NOTE = (
    "+rtt = seconds + RTT x (rounds + 1): rounds = the most MPyC communication rounds any party "
    "counted (a send after a receipt starts a round: an upper bound on the protocol's depth), "
    "+1 for the client's request to the agents. It leaves out bandwidth (each party's bytes sent "
    "are the records' mpc_bytes), TCP and TLS connection set-up (made while the local jobs "
    "run) and packet loss.")
WAN_NOTE = (
    "wan = isolated over a simulated WAN: every MPyC message reached its party {ms:g}/2 ms "
    "after it arrived, so the secure part's time is measured with the protocol's own "
    "dependencies; seconds add {ms:g} ms for the client's request and answer. It leaves out "
    "bandwidth, TCP and TLS connection set-up (made while the local jobs run) and packet "
    "loss; rounds there are counted as in any run.")


def isolated_estimate(parties: dict[str, dict], probes: dict[str, dict], launcher: float,
                      secure: float) -> dict:
    """The one-machine-per-party time of a run whose local jobs ran one at a time.

    `parties`: the --stats file's per-party records ({"seconds": {...}, "t": {"spawned",
    "local_done", ...}}); `probes`: benchmarks.taxi.probe's reports ({party: {"wait", "job"}});
    `launcher`, `secure`: the run's client time and secure span. Returns {"seconds",
    "local_isolated", "local_jobs": {party: seconds alone}}.
    """
    local = {}
    for name, p in parties.items():
        t = p.get("t") or {}
        if "local_done" not in t:
            continue
        asked = t.get("spawned", t.get("start", t["local_done"]))
        wait = (probes.get(name) or {}).get("wait", 0.0)
        local[name] = max(t["local_done"] - asked - wait, 0.0)
    slowest = max(local.values(), default=0.0)
    return {"seconds": launcher + slowest + secure, "local_isolated": slowest,
            "local_jobs": {n: round(p["job"], 4) for n, p in probes.items() if "job" in p}}


def rounds_of(probes: dict[str, dict]) -> dict:
    """The most rounds and messages any party counted in the secure part ({} if none)."""
    counted = [p for p in probes.values() if "rounds" in p]
    if not counted:
        return {}
    return {"rounds": max(p["rounds"] for p in counted),
            "messages": max(p["messages"] for p in counted),
            "mpc_bytes": max(p["bytes"] for p in counted)}


def with_rtt(seconds: float, rounds: int, rtt_ms: float) -> float:
    """`seconds` plus `rtt_ms` per round of the secure part and one for the client's request."""
    return seconds + rtt_ms / 1000.0 * (rounds + 1)
