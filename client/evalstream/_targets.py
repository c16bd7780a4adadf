"""Where a client connects: one server, several replicas, or a DNS name; how calls are balanced
and which are retried.

gRPC Python resolves a target by the schemes of gRPC's naming document
(``dns:``, ``ipv4:``, ``ipv6:``, ``unix:``) and offers no resolver of one's own
(grpc/grpc#28761), so several replicas reach one channel in one of two ways:

* a list of IP literals (``["10.0.0.1:50051", "10.0.0.2:50051"]``, or the same
  comma-separated), sent as ``ipv4:10.0.0.1:50051,10.0.0.2:50051`` (or ``ipv6:``);
* one ``dns:///name:port`` whose record lists every replica (a Kubernetes
  headless Service does), re-resolved by gRPC when a replica goes away.

Either is balanced by gRPC's ``round_robin`` policy, which sends each call to
the next *ready* replica, so a dead one is skipped as soon as its connection
drops. A list of several host names is refused: resolving them here once would
freeze their addresses, and a channel per name would duplicate what round_robin
does; use their IP addresses or one DNS name instead.

Retries: the channel's service config retries a call that failed with
UNAVAILABLE (the replica went away, or the server could not reach its database)
up to 4 attempts, only for calls that are safe to repeat: `RETRIED_METHODS`.
Those are the reads, and the writes the server applies idempotently
(SetRunStatus sets a value; UpdateRun merges its summary, upserts saved
checkpoints and adds hyperparameters equal to any it has; LogCheckpoint upserts
per (run, split, step)). CreateRun is not retried (the server generates the
run's id, so a repeat after a lost reply would be refused as ALREADY_EXISTS);
StreamLoss is not (the run logger resends its unacked chunks itself), nor are
the scoring streams (their inputs can be far larger than gRPC's retry buffer).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

#: Schemes a single target may carry, as gRPC's naming document defines them.
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")

_READS = (
    "GetRun",
    "ListRuns",
    "GetCurves",
    "ExportCurves",
    "GetVerdict",
    "WatchVerdict",
    "CompareRuns",
    "ListEvaluationSteps",
    "GetSpecimens",
    "ListProjects",
    "GetSpecimenHistory",
    "CompareSpecimens",
)
_IDEMPOTENT_WRITES = ("SetRunStatus", "UpdateRun", "LogCheckpoint")

#: (service, method) of every call retried on UNAVAILABLE (see the module docs).
RETRIED_METHODS: tuple[tuple[str, str], ...] = (
    *(("evalstream.v1.Runs", m) for m in (*_READS, *_IDEMPOTENT_WRITES)),
    ("grpc.health.v1.Health", "Check"),
)

#: gRPC's retry policy for `RETRIED_METHODS` (at most 5 attempts is gRPC's own cap).
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


@dataclass(frozen=True)
class Targets:
    """The replicas a client reaches, as given (`entries`), and the one target its channel opens.

    `balanced`: calls go round-robin over every address the target resolves to.
    """

    entries: tuple[str, ...]
    channel_target: str
    balanced: bool

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address the client may send to (an ``ipv4:``/``ipv6:`` list split), for checks.

        Example:
            >>> parse_targets("ipv4:127.0.0.1:1,10.0.0.2:1").addresses
            ('127.0.0.1:1', '10.0.0.2:1')
        """
        found: list[str] = []
        for entry in self.entries:
            if entry.startswith(("ipv4:", "ipv6:")):
                found += entry.split(":", 1)[1].split(",")
            else:
                found.append(entry)
        return tuple(found)

    def tls_name(self) -> str | None:
        """The name TLS checks certificates against when gRPC has none: for an ``ipv4:``/
        ``ipv6:`` target, the host of its first address; None otherwise (gRPC's own).

        Example:
            >>> parse_targets(["10.0.0.1:1", "10.0.0.2:1"]).tls_name()
            '10.0.0.1'
        """
        if not self.channel_target.startswith(("ipv4:", "ipv6:")):
            return None
        host, _ = _split_port(self.addresses[0], "target")
        return host

    @property
    def display(self) -> str:
        """The targets as a user wrote them, for messages."""
        return ",".join(self.entries)

    def service_config(self) -> str:
        """The channel's service config (JSON): round_robin when balanced, and the retry policy.

        Example:
            >>> config = json.loads(parse_targets("127.0.0.1:1,127.0.0.2:1").service_config())
            >>> config["loadBalancingConfig"]
            [{'round_robin': {}}]
        """
        config: dict[str, object] = {
            "methodConfig": [
                {
                    "name": [{"service": s, "method": m} for s, m in RETRIED_METHODS],
                    "retryPolicy": RETRY_POLICY,
                }
            ]
        }
        if self.balanced:
            config["loadBalancingConfig"] = [{"round_robin": {}}]
        return json.dumps(config)


def _split_port(entry: str, where: str) -> tuple[str, str]:
    """(host, port) of ``host:port`` or ``[v6]:port``; ValueError naming `where` else."""
    if entry.startswith("["):
        end = entry.find("]")
        host, rest = entry[1:end], entry[end + 1 :]
        if end < 0 or not rest.startswith(":"):
            raise ValueError(
                f"{where} {entry!r} is malformed: write an IPv6 address as [addr]:port"
            )
        port = rest[1:]
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        raise ValueError(
            f"{where} {entry!r} has no port: write host:port (an IPv6 address as [addr]:port)"
        )
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{where} {entry!r} is malformed: write host:port with a port 1-65535")
    return host, port


def _family(entry: str, where: str) -> int:
    """4 or 6: the IP version of `entry`'s host; ValueError when it is a host name."""
    host, _ = _split_port(entry, where)
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        raise ValueError(
            f"{where} {entry!r} is a host name: several replicas are balanced only by their IP "
            "addresses (e.g. 10.0.0.1:50051,10.0.0.2:50051) or by one dns:///name:port target "
            "whose DNS record lists every replica"
        ) from None


def _check_single(entry: str) -> None:
    if "://" in entry and not entry.startswith(_SCHEMES):
        scheme = entry.split(":")[0]
        raise ValueError(
            f"target {entry!r}: the scheme {scheme}:// is not a gRPC target; write host:port, "
            "dns:///name:port, ipv4:addr:port,... or unix:path"
        )
    if entry.startswith(("ipv4:", "ipv6:")):
        scheme, addresses = entry.split(":", 1)
        want = 4 if scheme == "ipv4" else 6
        for i, address in enumerate(addresses.split(",")):
            if _family(address, f"target {entry!r}: address [{i}]") != want:
                raise ValueError(
                    f"target {entry!r}: address [{i}] {address!r} is not IPv{want} ({scheme}:)"
                )
    elif not entry.startswith(_SCHEMES) and (entry.count(":") == 1 or entry.startswith("[")):
        _split_port(entry, "target")


def parse_targets(target: str | Sequence[str]) -> Targets:
    """The `Targets` of one address, a comma-separated list, or a sequence of addresses.

    Raises:
        ValueError: an empty target or entry, a malformed one, a host name among
            several, a scheme among several, or IPv4 mixed with IPv6 (naming the
            entry and its index).

    Example:
        >>> parse_targets("localhost:50051").channel_target
        'localhost:50051'
        >>> parse_targets(["10.0.0.1:50051", " 10.0.0.2:50051"]).channel_target
        'ipv4:10.0.0.1:50051,10.0.0.2:50051'
        >>> parse_targets("dns:///evalstream.ml.svc:50051").balanced
        True
        >>> parse_targets("replica-a:1,replica-b:1")
        Traceback (most recent call last):
        ...
        ValueError: targets[0] 'replica-a:1' is a host name: several replicas are ...
    """
    if isinstance(target, str):
        text = target.strip()
        if not text:
            raise ValueError("target is empty: give host:port (e.g. localhost:50051)")
        entries = [text] if text.startswith(_SCHEMES) else [e.strip() for e in text.split(",")]
    else:
        entries = [str(e).strip() for e in target]
        if not entries:
            raise ValueError("targets is an empty list: give at least one host:port")
    for i, entry in enumerate(entries):
        if not entry:
            raise ValueError(f"targets[{i}] is empty (a stray comma?)")
    if len(entries) == 1:
        (entry,) = entries
        _check_single(entry)
        balanced = entry.startswith("dns:") or (
            entry.startswith(("ipv4:", "ipv6:")) and "," in entry
        )
        return Targets((entry,), entry, balanced)
    families: list[int] = []
    for i, entry in enumerate(entries):
        if entry.startswith(_SCHEMES):
            raise ValueError(
                f"targets[{i}] {entry!r} carries a scheme: give a dns:/// or ipv4:/ipv6: "
                "target alone, or several plain IP:port addresses"
            )
        families.append(_family(entry, f"targets[{i}]"))
        if families[i] != families[0]:
            raise ValueError(
                f"targets[{i}] {entry!r} is IPv{families[i]} but targets[0] {entries[0]!r} is "
                f"IPv{families[0]}: gRPC balances one family at a time; give addresses of one"
            )
        if entry in entries[:i]:
            raise ValueError(f"targets[{i}] {entry!r} is given twice")
    scheme = "ipv4" if families[0] == 4 else "ipv6"
    return Targets(tuple(entries), f"{scheme}:{','.join(entries)}", True)
