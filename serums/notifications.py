"""``python -m serums.notifications [--mqtt HOST:PORT | --mqtt -]``: the notification service of a
SERUMS data directory (:class:`gateway.notifications.NotificationService`), configured like the
gateway's workers (:class:`serums.config.Settings` from the ``SERUMS_*`` environment). It follows
the chain's events from its checkpoint, keeps each person's notifications in the user directory's
database (where the web pages read them) and publishes them to MQTT (``--mqtt``, else
``SERUMS_MQTT``: default 127.0.0.1:1883; ``-`` or ``off`` for none). ``serums up`` runs it as a
supervised child (restarted when it dies); run it yourself only beside a gateway started without
``serums up``. SIGTERM or Ctrl-C stops it."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading

from .config import Settings

log = logging.getLogger("serums.notifications")


def main(argv: list[str] | None = None) -> None:
    from gateway.notifications import MqttPublisher, NotificationService, NotificationStore
    from gateway.services import Services

    from .datadir import private_umask

    ap = argparse.ArgumentParser(prog="python -m serums.notifications", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mqtt", help="the MQTT broker (host:port), or - for none (default: SERUMS_MQTT, else "
                                   "127.0.0.1:1883)")
    ap.add_argument("--stop-with-parent", action="store_true",
                    help="stop once the process that started it is gone (serums up passes this)")
    args = ap.parse_args(argv)
    private_umask()
    settings = Settings.from_env()
    mqtt = args.mqtt if args.mqtt is not None else (settings.mqtt or "-")
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    services = Services.open(settings.gateway_settings(), auth_config=settings.auth_config())
    store = NotificationStore(services.auth.engine)
    store.create_tables()
    publisher = None
    if mqtt not in ("-", "off"):
        host, _, port = mqtt.rpartition(":")
        if not port.isdigit():
            raise SystemExit(f"serums.notifications: --mqtt must be host:port or -, not {mqtt!r}")
        publisher = MqttPublisher(host or "127.0.0.1", int(port))
    service = NotificationService(services, store, publisher).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if args.stop_with_parent:
        from .datadir import stop_with_parent

        stop_with_parent(lambda parent: (log.warning("serums up (pid %s) is gone; stopping", parent), done.set()),
                         settings.data_dir)
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    service.stop()
    services.close()


if __name__ == "__main__":
    main()
