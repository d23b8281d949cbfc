"""``serums network …``: crypto material and channel configuration."""

from __future__ import annotations

from network import BatchConfig, init_network, parse_hospitals

from ..cli import host_port


def register(sub) -> None:
    p = sub.add_parser("network", help="create and inspect the network's organisations")
    nsub = p.add_subparsers(dest="network_command", metavar="ACTION", required=True)
    init = nsub.add_parser("init", help="create each hospital's CA, peer and admin identities")
    init.add_argument("--hospitals", default="lothian,zmc,fcrb", help="comma-separated hospital names")
    init.add_argument("--channel", default="serums")
    init.add_argument("--endpoint", default="127.0.0.1:7051", type=host_port, help="where the node serves the Gateway API")
    init.add_argument("--force", action="store_true", help="replace an existing network (new keys)")
    init.add_argument("--batch-timeout-ms", type=float, default=1.0,
                      help="cut a block this long after its first transaction, once the committers are free (default 1)")
    init.add_argument("--max-message-count", type=int, default=500, help="transactions per block at most")
    init.add_argument("--preferred-max-bytes", type=int, default=2 * 1024 * 1024, help="bytes per block at most")
    init.set_defaults(handler=_init)


def _init(args) -> int:
    s = args.settings
    cfg = init_network(
        s.network_dir,
        parse_hospitals(args.hospitals),
        channel=args.channel,
        endpoint=args.endpoint,
        passphrase=s.key_passphrase,
        force=args.force,
        batch=BatchConfig(args.max_message_count, args.preferred_max_bytes, args.batch_timeout_ms),
    )
    print(f"network initialised in {cfg.root}")
    for h in cfg.hospitals:
        print(f"  {h.name:<12} {h.msp_id}")
    print(f"  channel {cfg.channel}, endpoint {cfg.endpoint}")
    return 0
