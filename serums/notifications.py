"""``python -m serums.notifications [--mqtt HOST:PORT | --mqtt -]``: the notification service of a
SERUMS data directory (:class:`gateway.notifications.NotificationService`), configured like the
gateway's workers (:class:`serums.config.Settings` from the ``SERUMS_*`` environment). It follows
the chain's events from its checkpoint, keeps each person's notifications in the user directory's
database (where the web pages read them) and publishes them to MQTT (default 127.0.0.1:1883; ``-``
for none). Run one per deployment, beside ``serums up``; SIGTERM or Ctrl-C stops it."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading

from .config import Settings


def main(argv: list[str] | None = None) -> None:
    from gateway.notifications import MqttPublisher, NotificationService, NotificationStore
    from gateway.services import Services

    from .datadir import private_umask

    ap = argparse.ArgumentParser(prog="python -m serums.notifications", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mqtt", default="127.0.0.1:1883", help="the MQTT broker (host:port), or - for none")
    args = ap.parse_args(argv)
    private_umask()
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    services = Services.open(settings.gateway_settings(), auth_config=settings.auth_config())
    store = NotificationStore(services.auth.engine)
    store.create_tables()
    publisher = None
    if args.mqtt != "-":
        host, _, port = args.mqtt.rpartition(":")
        if not port.isdigit():
            raise SystemExit(f"serums.notifications: --mqtt must be host:port or -, not {args.mqtt!r}")
        publisher = MqttPublisher(host or "127.0.0.1", int(port))
    service = NotificationService(services, store, publisher).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    service.stop()
    services.close()


if __name__ == "__main__":
    main()
