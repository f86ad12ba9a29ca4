"""The ``outbound-pro`` command.

Each module that has operator commands exposes ``add_commands(subparsers)``; this file only
lists them, so a module's commands live beside the code they drive.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from outbound_pro import __version__
from outbound_pro.config import ConfigError, load_config

COMMAND_MODULES: tuple[str, ...] = ("outbound_pro.accounts.cli", "outbound_pro.billing.cli")


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from outbound_pro.app import serve

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"outbound-pro: {exc}", file=sys.stderr)
        return 2
    try:
        uvloop.run(serve(config))
    except OSError as exc:
        print(
            f"outbound-pro: cannot start: {exc}. Is another server on the same ports? "
            "Set other ports in the [sip] and [http] sections of the configuration.",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outbound-pro",
        description="Outbound Pro: self-hosted outbound call-center platform "
        "(SIP B2BUA, RTP relay and recorder, registrar, dialer, billing).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the server (SIP UDP/TCP/TLS, HTTP) on one event loop",
        description="Run every service on one uvloop event loop. With no --config, embedded "
        "defaults apply: SIP on UDP and TCP 5060 and TLS 5061 with a self-signed certificate, "
        "HTTP on 8080, SQLite database and recordings under ./data.",
    )
    serve.add_argument(
        "--config", metavar="FILE", help="TOML configuration file (every setting is optional)"
    )
    serve.set_defaults(func=_serve)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
