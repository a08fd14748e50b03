"""``local-issuer``: serve the local issuer with gunicorn (one process, many threads).

One gthread worker on purpose: the signing keys and the custom-data store live in that one
process, and threads give the concurrency (hundreds of parallel token requests are fine).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import socket
import sys
from pathlib import Path

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from pydantic import Field

from logto_m2m.settings import ProjectSettings, SettingsError, load_settings

from . import DEFAULT_STATE_DIR, create_app
from .config import ConfigError, default_config_path, packaged_config_paths
from .keys import KeyFileError
from .logsafe import SafeAccessLogger, SafeArgsFilter
from .tenant import TenantStateError
from .users import UserStoreError

THREADS = 32
BACKLOG = 2048
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'  # path only: never the query string

log = logging.getLogger("local_issuer")


class IssuerSettings(ProjectSettings):
    """Defaults for the command-line options, from the environment or ``.env``."""

    logto_endpoint: str | None = None
    local_issuer_host: str = "127.0.0.1"
    local_issuer_port: int = Field(default=3001, ge=1, le=65535)
    local_issuer_config: Path | None = None
    local_issuer_state_dir: Path = Path(DEFAULT_STATE_DIR)
    local_issuer_key_file: Path | None = None
    local_issuer_allow_demo_config_on_network: bool = False


def parse_args(argv: list[str] | None, settings: IssuerSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="local-issuer",
        description="A Logto-compatible authorization server for local development and tests "
        "(client_credentials, JWT access tokens, a Management API subset). "
        "Not for production.",
    )
    parser.add_argument(
        "--host",
        default=settings.local_issuer_host,
        help="address to listen on (default %(default)s; env LOCAL_ISSUER_HOST)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.local_issuer_port,
        help="port to listen on (default %(default)s; env LOCAL_ISSUER_PORT)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=settings.local_issuer_config,
        help="tenant config, YAML or JSON (default: the packaged demo config; env LOCAL_ISSUER_CONFIG)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=settings.local_issuer_state_dir,
        help="where the signing key and users' custom data are kept "
        "(default %(default)s; env LOCAL_ISSUER_STATE_DIR)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=settings.local_issuer_key_file,
        help="private JWKS file (default STATE_DIR/signing-keys.json; env LOCAL_ISSUER_KEY_FILE)",
    )
    parser.add_argument(
        "--endpoint",
        default=settings.logto_endpoint,
        help="public base URL; tokens say iss={endpoint}/oidc "
        "(default: env LOGTO_ENDPOINT, else http://HOST:PORT)",
    )
    parser.add_argument(
        "--rotate-key",
        action="store_true",
        help="generate a new signing key, publish it first, keep the previous one published",
    )
    parser.add_argument(
        "--allow-demo-config-on-network",
        action="store_true",
        default=settings.local_issuer_allow_demo_config_on_network,
        help="serve a packaged config (public secrets) on an address other than loopback, e.g. "
        "inside a private container network (env LOCAL_ISSUER_ALLOW_DEMO_CONFIG_ON_NETWORK)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error("--port must be between 1 and 65535")
    if args.endpoint and not args.endpoint.startswith(("http://", "https://")):
        parser.error("--endpoint must be an http:// or https:// URL")
    return args


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def uses_packaged_config(config: Path | None) -> bool:
    """Whether the tenant comes from a config shipped with the package, whose secrets are public."""
    if config is None:
        return True
    try:
        resolved = config.resolve()
    except OSError:
        return False
    return any(resolved == path.resolve() for path in packaged_config_paths())


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port now, before anything else happens.

    The issuer binds before it touches its state (the key file above all): a second
    ``local-issuer --rotate-key`` next to a running one must change nothing. gunicorn then serves
    this very socket (``fd://``), so there is no window in which another program can take the
    port, and no five bind retries. SO_REUSEADDR as gunicorn sets it: a port left in TIME_WAIT
    is reusable, one that something listens on is not.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_error(host: str, port: int, exc: OSError, *, rotate: bool) -> str:
    where = _hostport(host, port)
    if exc.errno == errno.EADDRINUSE:
        if rotate:
            return f"{where} is in use: stop the running issuer first, then start it with --rotate-key"
        return f"{where} is in use: stop what listens there (another local-issuer?) or choose another --port"
    return f"cannot listen on {where}: {exc.strerror or exc}"


class IssuerServer(BaseApplication):
    """gunicorn run programmatically, serving an app built (and validated) before it starts."""

    def __init__(self, app: Flask, options: dict[str, object]) -> None:
        self.application = app
        self.options = options
        super().__init__(prog="local-issuer")

    def load_config(self) -> None:
        for name, value in self.options.items():
            if name in self.cfg.settings:  # settings newer than the oldest supported gunicorn are optional
                self.cfg.set(name, value)

    def load(self) -> Flask:  # type: ignore[override]  # a WSGI app; the stubs spell start_response narrower than Flask
        return self.application


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(SafeArgsFilter())
    try:
        settings = load_settings(IssuerSettings)
    except SettingsError as exc:
        print(f"local-issuer: {exc}", file=sys.stderr)
        return 2
    args = parse_args(argv, settings)
    endpoint = (args.endpoint or f"http://{_hostport(args.host, args.port)}").rstrip("/")
    public_secrets_on_network = uses_packaged_config(args.config) and not is_loopback(args.host)
    if public_secrets_on_network and not args.allow_demo_config_on_network:
        print(
            f"local-issuer: refusing to serve the packaged demo config on {args.host}: its app secrets "
            "are public, so anyone who reaches this address gets tokens. Listen on 127.0.0.1, pass "
            "--config with your own secrets, or add --allow-demo-config-on-network if the address is "
            "a private network (e.g. inside docker compose)",
            file=sys.stderr,
        )
        return 2
    try:
        listener = listen(args.host, args.port)
    except OSError as exc:  # before any state change: the key file is untouched
        print(
            f"local-issuer: {bind_error(args.host, args.port, exc, rotate=args.rotate_key)}", file=sys.stderr
        )
        return 1
    try:
        app = create_app(
            {
                "ISSUER_ENDPOINT": endpoint,
                "ISSUER_CONFIG_FILE": str(args.config) if args.config else None,
                "ISSUER_STATE_DIR": str(args.state_dir),
                "ISSUER_KEY_FILE": str(args.key_file) if args.key_file else None,
                "ISSUER_ROTATE_KEY": args.rotate_key,
            }
        )
    except (ConfigError, KeyFileError, UserStoreError, TenantStateError) as exc:
        listener.close()
        print(f"local-issuer: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        listener.close()
        raise
    issuer = app.extensions["local_issuer"]
    config_name = args.config or f"{default_config_path().name} (packaged demo config)"
    if args.rotate_key:
        log.info(
            "rotated the signing key: new kid %s signs; the previous key stays published",
            issuer.keys.current.kid,
        )

    def when_ready(server: Arbiter) -> None:
        logger = server.log or log  # gunicorn sets its logger before it calls when_ready
        if public_secrets_on_network:
            logger.warning(
                "local-issuer: WARNING: the packaged demo config (public secrets) is served on %s: "
                "anyone who can reach it can get tokens; keep this address private",
                _hostport(args.host, args.port),
            )
        logger.info(
            "local-issuer: LOCAL DEVELOPMENT ISSUER, NOT FOR PRODUCTION. Issuer %s on http://%s "
            "(config %s, signing key kid %s)",
            issuer.issuer,
            _hostport(args.host, args.port),
            config_name,
            issuer.keys.current.kid,
        )

    IssuerServer(
        app,
        {
            "bind": f"fd://{listener.detach()}",  # the socket bound above; gunicorn owns it from here
            "workers": 1,
            "worker_class": "gthread",
            "threads": THREADS,
            "backlog": BACKLOG,
            "timeout": 30,
            "graceful_timeout": 5,
            "keepalive": 5,
            "accesslog": "-",
            "logger_class": SafeAccessLogger,  # control characters escaped, values capped
            "access_log_format": ACCESS_LOG_FORMAT,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "local-issuer",
            "when_ready": when_ready,
            # gunicorn 24+ opens a control socket in the home directory; several local servers would share it.
            "control_socket_disable": True,
        },
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
