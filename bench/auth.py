"""Benchmark: FlexPass logins per second and p99 login latency with OWASP-grade Argon2id.

A login here is the whole service-layer path a user goes through: ``begin_login`` (throttle,
Argon2id verification of the textual or graphical key, Argon2id derivation of the wallet key,
the login challenge) then ``complete_login`` (TOTP check with replay protection, session with its
sealed wallet key). Textual and graphical logins alternate; worker threads run them concurrently
(argon2-cffi releases the GIL, so threads use every core) against a SQLite user directory.

Users log in in rounds (each user once per round) and the service clock moves one TOTP step
between rounds, so no code is ever a replay. Also measured, for the no-enumeration claim: the
latency of a wrong key for a real user and of any key for an unknown user (they should match).

Prints one JSON object on stdout; progress goes to stderr.

    .venv/bin/python bench/auth.py [--quick] [--threads N] [--memory-kib M --iterations T]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth import (  # noqa: E402
    Argon2Params,
    AuthConfig,
    AuthService,
    InvalidCredentials,
    LoginRequest,
    RegistrationRequest,
)
from auth.crypto import KeyHasher  # noqa: E402
from auth.graphical import library  # noqa: E402
from network import CertificateAuthority  # noqa: E402


class BenchClock:
    """Real time plus an offset the benchmark moves between rounds (one TOTP step each)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def key_for(i: int) -> str:
    return f"My copper teapot Wilhelmina hums tune {i * 7919} at dusk"


def images_for(i: int) -> list[str]:
    pics = [g.id for g in library()]
    theme = pics[(i % 6) * 16 : (i % 6) * 16 + 16]
    return [theme[(i + j * 3) % 16] for j in range(5)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced run (< 1 minute)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs (CI); figures meaningless")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--users", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--memory-kib", type=int, default=Argon2Params().memory_kib)
    ap.add_argument("--iterations", type=int, default=Argon2Params().iterations)
    ap.add_argument("--parallelism", type=int, default=Argon2Params().parallelism)
    args = ap.parse_args(argv)
    args.quick = args.quick or args.smoke
    users = args.users or (2 if args.smoke else 8 if args.quick else 16)
    rounds = args.rounds or (1 if args.smoke else 4 if args.quick else 20)
    params = Argon2Params(memory_kib=args.memory_kib, iterations=args.iterations, parallelism=args.parallelism)
    if not params.meets_owasp():
        log(f"warning: {params.describe()} is below OWASP's recommendation")

    # a single hash, for reference
    hasher = KeyHasher(params)
    t0 = time.perf_counter()
    for _ in range(5):
        hasher.hash(b"x" * 32)
    hash_ms = (time.perf_counter() - t0) / 5 * 1000

    with tempfile.TemporaryDirectory(prefix="serums-bench-auth-") as tmp:
        clock = BenchClock()
        ca = CertificateAuthority.create("BenchMSP", "bench")
        service = AuthService.from_url(f"sqlite:///{tmp}/auth.db", AuthConfig.ephemeral(argon2=params, wallet_kdf=params),
                                       ca_provider=lambda _h: ca, clock=clock)
        service.create_tables()
        log(f"{params.describe()}: one hash {hash_ms:.1f} ms; enrolling {users} users")
        regs = []
        for i in range(users):
            regs.append(service.register(RegistrationRequest(f"bench.user{i}", "specialist", "bench", key_for(i),
                                                             images_for(i))))

        def one_login(i: int) -> tuple[str, float]:
            method = "text" if i % 2 == 0 else "graphical"
            start = time.perf_counter()
            if method == "text":
                req = LoginRequest(f"bench.user{i}", "text", text_key=key_for(i), client_addr=f"10.1.{i}.1")
            else:
                req = LoginRequest(f"bench.user{i}", "graphical", selection=images_for(i), client_addr=f"10.1.{i}.1")
            challenge = service.begin_login(req)
            code = service.totp.code_at(regs[i].totp.secret, clock())
            service.complete_login(challenge.token, totp_code=code)
            return method, (time.perf_counter() - start) * 1000

        latencies: dict[str, list[float]] = {"text": [], "graphical": []}
        lock = threading.Lock()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            list(pool.map(one_login, range(users)))  # warm-up round
            clock.offset += 30
            log(f"{rounds} rounds of {users} logins on {args.threads} threads")
            wall = 0.0
            for _ in range(rounds):
                t0 = time.perf_counter()
                for method, ms in pool.map(one_login, range(users)):
                    with lock:
                        latencies[method].append(ms)
                wall += time.perf_counter() - t0
                clock.offset += 30

            # failed logins: a wrong key for a real user, any key for an unknown user
            def wrong(i: int) -> float:
                start = time.perf_counter()
                with contextlib.suppress(InvalidCredentials):
                    service.begin_login(LoginRequest(f"bench.user{i % users}", "text", text_key="not the key at all"))
                ms = (time.perf_counter() - start) * 1000
                service.unlock(f"bench.user{i % users}")
                return ms

            def unknown(i: int) -> float:
                start = time.perf_counter()
                with contextlib.suppress(InvalidCredentials):
                    service.begin_login(LoginRequest(f"nobody.{i}", "text", text_key="not the key at all"))
                return (time.perf_counter() - start) * 1000

            probes = users * 2
            wrong_ms = list(pool.map(wrong, range(probes)))
            unknown_ms = list(pool.map(unknown, range(probes)))
        service.engine.dispose()

    all_ms = latencies["text"] + latencies["graphical"]
    result = {
        "logins_per_s": round(len(all_ms) / wall, 2),
        "login_p99_ms": round(percentile(all_ms, 99), 1),
        "login_p50_ms": round(percentile(all_ms, 50), 1),
        "text_login_p50_ms": round(percentile(latencies["text"], 50), 1),
        "graphical_login_p50_ms": round(percentile(latencies["graphical"], 50), 1),
        "wrong_key_p50_ms": round(statistics.median(wrong_ms), 1),
        "unknown_user_p50_ms": round(statistics.median(unknown_ms), 1),
        "argon2_memory_kib": params.memory_kib,
        "argon2_iterations": params.iterations,
        "argon2_parallelism": params.parallelism,
        "argon2_hash_ms": round(hash_ms, 1),
        "threads": args.threads,
        "logins": len(all_ms),
        "quick": args.quick,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
