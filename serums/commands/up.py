"""``serums up``: bring the whole system up on the embedded default.

On a fresh data directory: create the network (three hospitals), deploy the chaincode, start the
embedded node, register the hospitals and their generic rules, create each hospital's vault and
its service identity, fabricate the Edinburgh Cancer Centre data and ingest each hospital's
patients into its own vault, enrol the patients on chain with varied preferences of their own,
enrol demo users of every role (FlexPass), start the gateway under gunicorn and the notification
service beside it (MQTT: ``SERUMS_MQTT``), and print how to log in. A second ``serums up`` reuses
everything (each step reads what is there first). Ctrl-C stops them all cleanly.

``serums up`` owns its data directory while it runs (:mod:`serums.datadir`: a second one exits at
once naming this one's PID) and supervises the node (with ``--engine fabric``: the orderer, each
peer and each chaincode server) and the notification service (:mod:`serums.supervisor`): each, when
it dies, is restarted with back-off while the gateway keeps serving.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from network import (
    ChaincodeDefinition,
    GatewayError,
    NetworkConfig,
    channel_credentials,
    client_tls_options,
    init_network,
    write_private_file,
)

from ..bootstrap import publish_preferences, publish_rules, register_hospitals, register_patients
from ..cli import CommandError, host_port
from ..datadir import DataDirLock
from ..supervisor import RestartPolicy, Supervisor, free_port, node_ready, port_in_use

DEFAULT_HOSPITALS = ["lothian", "zmc", "fcrb"]
DEFAULT_CHAINCODES = [
    ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY"),
    ChaincodeDefinition("assets", "chaincode.samples:assets_chaincode", "1.0", "MAJORITY"),
]

#: Demo users of every role: (username, hospital, role). Patients are added per hospital.
DEMO_STAFF = [
    ("admin.lothian", "lothian", "hospital_admin"),
    ("admin.zmc", "zmc", "hospital_admin"),
    ("admin.fcrb", "fcrb", "hospital_admin"),
    ("dr.hughes", "lothian", "specialist"),
    ("dr.brown", "lothian", "gp"),
    ("nurse.reid", "lothian", "nurse"),
    ("dr.jansen", "zmc", "specialist"),
    ("dr.puig", "fcrb", "specialist"),
    ("researcher.garcia", "fcrb", "researcher"),
    ("insurer.lopez", "fcrb", "insurer"),
    ("auditor.martin", "fcrb", "auditor"),
]
DEMO_PATIENTS_PER_HOSPITAL = 2
#: Words for demo textual keys: four random words and a number are well past the strength check.
_WORDS = ("amber", "basalt", "cobalt", "dune", "ember", "fjord", "glacier", "harbour", "indigo", "juniper",
          "kelp", "lagoon", "meadow", "nettle", "orchard", "pebble", "quarry", "rowan", "saffron", "thistle",
          "umber", "violet", "willow", "yarrow", "zephyr", "beacon", "cinder", "drift", "estuary", "falcon")


def register(sub) -> None:
    p = sub.add_parser("up", help="bring the whole system up (the first run creates everything)")
    p.add_argument("--node-listen", type=host_port, help="host:port of the node's Gateway API (default: the network's endpoint)")
    p.add_argument("--listen", default="127.0.0.1:8000", type=host_port, help="host:port of the HTTP gateway (default 127.0.0.1:8000)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument("--threads", type=int, default=4,
                   help="threads per worker (default 4: a request waiting for a commit does not block others)")
    p.add_argument("--patients", type=int, default=933, help="patients to fabricate on first run (default 933)")
    p.add_argument("--seed", type=int, default=2021, help="fabrication seed")
    p.add_argument("--no-gateway", action="store_true", help="set everything up and run the node only")
    p.add_argument("--engine", choices=["embedded", "fabric"],
                   help="the ledger: the embedded node, or real Hyperledger Fabric (default: SERUMS_ENGINE)")
    p.set_defaults(handler=_up)


def step(n: int, total: int, text: str) -> None:
    print(f"[up {n}/{total}] {text}", flush=True)


def ensure_network(settings) -> NetworkConfig:
    path = settings.network_dir / "network.json"
    if path.exists():
        cfg = NetworkConfig.load(settings.network_dir)
        print(f"        reusing {cfg.root} ({', '.join(h.name for h in cfg.hospitals)})", flush=True)
    else:
        cfg = init_network(settings.network_dir, DEFAULT_HOSPITALS, passphrase=settings.key_passphrase)
        print(f"        created hospitals {', '.join(DEFAULT_HOSPITALS)} in {settings.network_dir}", flush=True)
    have = {c.name for c in cfg.chaincodes}
    missing = [c for c in DEFAULT_CHAINCODES if c.name not in have]
    if missing:
        cfg.chaincodes.extend(missing)
        cfg.save()
        print(f"        deployed chaincode {', '.join(c.name for c in missing)}", flush=True)
    return cfg


def _split_by_hospital(frames) -> dict[str, dict[str, list[dict]]]:
    """Each hospital's share of the fabricated tables: its patients and their rows (a table with no
    row for the hospital is left out: a small hospital may have no chemotherapy at all)."""
    from fabrication import records

    patients = frames["patients"]
    out: dict[str, dict[str, list[dict]]] = {}
    for hospital, group in patients.groupby("hospital"):
        ids = set(group["patient_id"])
        tables = {table: list(records(df[df["patient_id"].isin(ids)] if table != "patients" else group))
                  for table, df in frames.items()}
        out[str(hospital)] = {table: rows for table, rows in tables.items() if rows}
    return out


def _demo_key(rng: secrets.SystemRandom) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(4)) + f" {rng.randrange(1000, 9999)}"


def _load_demo(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"users": []}


def _enrol_demo_users(services, settings, demo_path: Path, patient_refs: dict[str, list[str]]) -> dict:
    """FlexPass users of every role; their secrets are kept (0600) in demo-users.json for the demo."""
    demo = _load_demo(demo_path)
    known = {u["username"] for u in demo["users"]}
    rng = secrets.SystemRandom()
    library = [img.id for img in services.auth.image_library()]
    wanted = list(DEMO_STAFF)
    for hospital, refs in patient_refs.items():
        for i, ref in enumerate(refs[:DEMO_PATIENTS_PER_HOSPITAL], 1):
            wanted.append((f"patient.{hospital}{i}", hospital, "patient", ref))
    for entry in wanted:
        username, hospital, role = entry[:3]
        user_id = entry[3] if len(entry) > 3 else None
        if username in known or services.auth.find_user(username) is not None:
            continue
        admin_identity, admin_signer = services.hospital_admin(hospital)
        text_key = _demo_key(rng)
        theme = rng.choice(sorted({i.split(".")[0] for i in library}))
        images = rng.sample([i for i in library if i.startswith(theme + ".")], 5)
        reg = services.enrol(admin_identity, admin_signer, hospital, username, role, text_key, images, user_id)
        demo["users"].append({
            "username": username, "hospital": hospital, "role": role, "user_id": reg.user.user_id,
            "text_key": text_key, "images": images, "totp_secret": reg.totp.secret,
            "recovery_codes": reg.recovery_codes,
        })
        write_private_file(demo_path, json.dumps(demo, indent=2).encode())
    return demo


def _treat(services, demo: dict, patient_refs: dict[str, list[str]]) -> int:
    """The demo clinicians treat their hospital's demo patients and a few more."""
    added = 0
    for u in demo["users"]:
        if u["role"] not in ("specialist", "gp", "nurse"):
            continue
        users = services.admin_contract(u["hospital"], "UserContract")
        for ref in patient_refs.get(u["hospital"], [])[:10]:
            try:
                users.evaluate_json("GetTreatment", ref, u["user_id"])
                continue
            except GatewayError as exc:
                if exc.chaincode_status != 404:
                    raise
            users.submit_json("AddTreatment", ref, u["user_id"], "", "")
            added += 1
    return added


def _demo_preferences(services, demo: dict) -> None:
    """Demo patients sign their own preferences with their wallets (one denies research, the other
    insurers), unless they already have some."""
    choices = [
        {"pref_id": "no-research", "effect": "deny", "grantee": {"kind": "role", "id": "researcher"},
         "sections": ["*"], "purposes": ["research"]},
        {"pref_id": "no-insurers", "effect": "deny", "grantee": {"kind": "role", "id": "insurer"},
         "sections": ["*"], "purposes": ["*"]},
    ]
    for i, u in enumerate(x for x in demo["users"] if x["role"] == "patient"):
        signer = services.auth.open_wallet_with_key(u["username"], u["text_key"])
        prefs = services.user_contract(u["user_id"], signer, "PreferenceContract")
        if prefs.evaluate_json("ListPreferences", u["user_id"]).get("rules"):
            continue
        prefs.submit_json("AddPreference", u["user_id"], choices[i % len(choices)])


def _print_logins(demo: dict, url: str) -> None:
    print(f"\nSERUMS is up: {url}   (API docs: {url}/docs)\n", flush=True)
    print("Demo users (FlexPass textual key; second factor: `serums demo totp USERNAME`):")
    for u in demo["users"]:
        print(f"  {u['username']:<20} {u['role']:<15} {u['hospital']:<8} key: {u['text_key']}")
    print("\nA guided tour of the 10-step flow: `serums demo`.  Ctrl-C stops everything.\n", flush=True)


def _up(args) -> int:
    settings = args.settings
    data: Path = settings.data_dir
    lock = DataDirLock.acquire(data, "serums up")  # held until this process ends; its node inherits it
    total = 8
    gw_host, _, gw_port = args.listen.rpartition(":")
    if not args.no_gateway and port_in_use(gw_host, int(gw_port)):
        raise CommandError(f"--listen {args.listen}: that port is already in use")
    if args.node_listen and port_in_use(*_split(args.node_listen)):
        raise CommandError(f"--node-listen {args.node_listen}: that port is already in use")
    step(1, total, "network: three hospitals, each with its CA, peer and admin")
    cfg = ensure_network(settings)
    engine = args.engine or settings.engine
    node_address = args.node_listen or cfg.endpoint
    if engine == "embedded" and not args.node_listen and port_in_use(*_split(node_address)):
        host = _split(node_address)[0]
        node_address = f"{host}:{free_port(host)}"
        print(f"        the network's endpoint {cfg.endpoint} is taken by another program; the node serves on "
              f"{node_address} (choose with --node-listen)", flush=True)

    sup = Supervisor(data / "logs")
    fabric = None
    tls_ca: str | None = None
    ledger: Any = node_address  # what the set-up steps reach the ledger through
    try:
        if engine == "fabric":
            from .network import start_fabric, supervise_fabric

            step(2, total, "Hyperledger Fabric: Raft orderer, a peer per hospital, chaincode servers (TLS)")
            fabric, node_address, tls_ca = start_fabric(settings, cfg)
            supervise_fabric(sup, fabric)  # each restarted with back-off when it dies, like the node
            ledger = grpc.secure_channel(node_address, channel_credentials(client_tls_options(cfg, "off", tls_ca)))
            print(f"        gateway peer {node_address}", flush=True)
        else:
            # SERUMS_NODE_TLS: the node serves TLS (mutual: client certificates too); the set-up steps,
            # the gateway's workers and the notification service connect with it
            tls = client_tls_options(cfg, settings.node_tls)
            flags = {"on": ["--tls"], "mutual": ["--mutual-tls"]}.get(settings.node_tls, [])
            over = {"on": " over TLS", "mutual": " over mutual TLS"}.get(settings.node_tls, "")
            step(2, total, f"embedded node: peers, orderer and committers on {node_address}{over}")
            sup.spawn("node", [sys.executable, "-m", "serums", "--data-dir", str(data), "node", "--listen",
                               node_address, "--lock-fd", str(lock.fd), *flags],
                      ready=node_ready(cfg, node_address, settings.key_passphrase, tls), pass_fds=(lock.fd,),
                      restart=RestartPolicy())
            if tls:
                ledger = grpc.secure_channel(node_address, channel_credentials(tls))

        step(3, total, "hospitals and their generic rules (step 1)")
        added = register_hospitals(cfg, ledger, settings.key_passphrase)
        rules = publish_rules(cfg, ledger, settings.key_passphrase)
        print(f"        {len(added)} hospitals registered, {rules} rules published", flush=True)

        step(4, total, "vaults: one per hospital, with its service identity on chain")
        from gateway.services import Services

        services = Services.open(settings.gateway_settings(node_address=node_address, node_tls_ca=tls_ca,
                                                           engine=engine),
                                 auth_config=settings.auth_config())
        vaults = {h.name: services.ensure_vault(h.name) for h in cfg.hospitals}

        step(5, total, f"data: fabricate the Edinburgh Cancer Centre tables ({args.patients} patients) into the vaults")
        if all(not v.patients() for v in vaults.values()):
            from fabrication import fabricate_edinburgh

            t0 = time.monotonic()
            result = fabricate_edinburgh(args.patients, seed=args.seed, workers=min(2, os.cpu_count() or 1))
            if not result.report.ok:
                raise CommandError("fabrication broke a rule; see the diagnostic report (serums fabricate …)")
            for hospital, tables in _split_by_hospital(result.frames()).items():
                if hospital not in vaults:
                    continue
                rep = vaults[hospital].ingest_tables(tables, source="fabrication:edinburgh")
                print(f"        {hospital}: {len(tables['patients'])} patients, {rep.satellites_written} "
                      f"satellites", flush=True)
            print(f"        fabricated and ingested in {time.monotonic() - t0:.1f}s "
                  f"(rule validity {result.report.rule_validity:.0%})", flush=True)
        else:
            print(f"        reusing {sum(len(v.patients()) for v in vaults.values())} patients", flush=True)
        patient_refs = {h: v.patients() for h, v in vaults.items()}

        step(6, total, "demo users of every role (FlexPass)")
        demo_path = data / "demo-users.json"
        demo = _enrol_demo_users(services, settings, demo_path, patient_refs)
        print(f"        {len(demo['users'])} demo users", flush=True)

        step(7, total, "patients on chain with preferences of their own (step 2), treating relationships")
        written = 0
        enrolled = 0
        for hospital, refs in patient_refs.items():
            ids = register_patients(cfg, ledger, hospital, refs, settings.key_passphrase)
            enrolled += len(ids)
            written += publish_preferences(cfg, ledger, ids, refs)
        _demo_preferences(services, demo)
        treated = _treat(services, demo, patient_refs)
        print(f"        {enrolled} patients enrolled, {written} preferences, {treated} treating relationships",
              flush=True)
        services.close()

        if args.no_gateway:
            print(f"\nnode running on {node_address}; Ctrl-C stops it.", flush=True)
            return sup.wait()
        step(8, total, f"gateway: gunicorn with {args.workers} workers × {args.threads} threads on {args.listen}")
        env = {"SERUMS_DATA_DIR": str(data), "SERUMS_NODE_ADDRESS": node_address}
        if tls_ca:
            env.update(SERUMS_NODE_TLS_CA=tls_ca, SERUMS_ENGINE=engine)
        sup.spawn("gateway", [sys.executable, "-m", "gunicorn", "-c", "python:serums.gunicorn_conf", "-w",
                              str(args.workers), "--threads", str(args.threads), "-b", args.listen,
                              "--access-logfile", "-", "serums.wsgi:app"],
                  env=env, ready=lambda: _http_ready(f"http://{args.listen}/healthz"), timeout=90)
        # the notification service: follows the chain's events into the pages' store and MQTT; a
        # death is restarted like the node's (it resumes from its checkpoint: nothing lost or repeated)
        sup.spawn("notifications", [sys.executable, "-m", "serums.notifications", "--mqtt", settings.mqtt or "-",
                                    "--stop-with-parent"],
                  env=env, ready=lambda: True, restart=RestartPolicy())
        print(f"        notifications: following the chain's events; MQTT {settings.mqtt or 'off'}", flush=True)
        (data / "up.json").write_text(json.dumps({"url": f"http://{args.listen}", "node": node_address}))
        _print_logins(demo, f"http://{args.listen}")
        return sup.wait()
    finally:
        sup.stop_all()
        if not isinstance(ledger, str):
            ledger.close()
        if fabric is not None:
            fabric.down()  # exactly what this `up` started
        (data / "up.json").unlink(missing_ok=True)
        print("[up] stopped", flush=True)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _http_ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
