"""``python -m demo`` (``make demo``): run the quick start locally, narrated; see ``demo.flow``."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

from stats_worker.token_client import TokenRequestError

from .flow import Demo, DemoOptions
from .services import ServiceError


def port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535")
    return number


def parse_args(argv: list[str] | None) -> DemoOptions:
    parser = argparse.ArgumentParser(
        prog="make demo", description="Run Logto's machine-to-machine quick start locally, narrated."
    )
    parser.add_argument("--issuer-port", type=port, default=0, help="local issuer port (default: a free one)")
    parser.add_argument("--api-port", type=port, default=0, help="shopping API port (default: a free one)")
    parser.add_argument(
        "--api-workers",
        type=int,
        default=2,
        choices=range(1, 9),
        metavar="1..8",
        help="gunicorn worker processes (default: 2)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".demo"),
        help="where the database, reports and logs go (default: .demo)",
    )
    args = parser.parse_args(argv)
    if args.issuer_port and args.issuer_port == args.api_port:
        parser.error("--issuer-port and --api-port must differ")
    return DemoOptions(
        workdir=args.workdir,
        issuer_port=args.issuer_port,
        api_port=args.api_port,
        api_workers=args.api_workers,
    )


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt  # same path as Ctrl-C: stop every started process, then exit


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    demo = Demo(options)
    try:
        demo.run()
    except KeyboardInterrupt:
        print("\nInterrupted: every process the demo started has been stopped.", file=sys.stderr)
        return 130
    except (
        ServiceError,
        RuntimeError,
        OSError,
        ValueError,
        TokenRequestError,
        subprocess.SubprocessError,
    ) as exc:
        print(f"\nThe demo failed: {exc}", file=sys.stderr)
        if demo.logs.is_dir():
            print(f"Logs: {demo.logs}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
