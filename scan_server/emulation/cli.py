"""``scan-client``: replay recordings through a server, or emit one as a Dectris stream."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from scan_client.errors import ScanClientError

from ..cli import add_metadata_options, metadata_overrides, report_errors
from ..errors import ParameterError, ScanServerError
from ..evaluation import DEFAULT_FINAL_ITERATIONS
from ..policy import DEFAULT_MODEL
from .demo import DEMO_POSITIONS
from .recorded import STRATEGIES


def _replay_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("replay", help="replay recordings through a running server; write the report",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                            description="Each recording (canonical, Nion Swift, Dectris, EMD) is replayed with each "
                                        "strategy through the server over the network, as if this client were the "
                                        "detector; the visited patterns are scored as `scan-server evaluate` "
                                        "does (report.json, report.md, figures/, positions/) with per-step latency.")
    p.add_argument("recordings", type=Path, nargs="+")
    p.add_argument("--server", required=True, help="HTTP URL of the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--token", help="bearer token (default: $SCAN_SERVER_TOKEN)")
    p.add_argument("--strategy", default="all", choices=(*STRATEGIES, "all"),
                   help="strategy to replay (all: every one the server offers)")
    p.add_argument("--positions", type=int, nargs="+", default=[250],
                   help="positions per scan; several: a dose–quality curve (250 must be one of them)")
    p.add_argument("--final-iterations", type=int, default=DEFAULT_FINAL_ITERATIONS,
                   help="ROP iterations of each scored reconstruction (30: converged; 5: the paper's protocol)")
    p.add_argument("--seed", type=int, default=0, help="seed of the baseline scans (recording i uses seed + i)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request before a retry")
    p.add_argument("--device", default="auto", help="for the scoring reconstructions")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--view", action="store_true",
                   help="open each replayed session's live view in the browser (the token travels in the URL's "
                        "fragment, which is never sent to the server)")
    add_metadata_options(p)


def _stream_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("stream", help="emit a recording as a Dectris detector stream (ZeroMQ PUSH)")
    p.add_argument("recording", type=Path)
    p.add_argument("--version", type=int, choices=(1, 2), default=2, help="1: legacy JSON; 2: CBOR")
    p.add_argument("--bind", default="tcp://127.0.0.1:9999", help="PUSH endpoint receivers PULL from")
    p.add_argument("--count", type=int, help="only the first N frames (the header announces N; the series ends)")
    add_metadata_options(p)


def _demo_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="the closed loop end to end: simulate, serve, replay every strategy, report",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--positions", type=int, nargs="+", default=list(DEMO_POSITIONS),
                   help="positions per scan: the dose–quality curve's counts (250 must be one of them)")
    p.add_argument("--final-iterations", type=int, default=DEFAULT_FINAL_ITERATIONS,
                   help="ROP iterations of each scored reconstruction (30: converged; 5: the paper's protocol)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model in models/ ('' for baselines only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scan-client", description="The microscope side emulated from recordings: replay them through a running "
                                        "server, emit a Dectris detector stream, or run the demo. (The client library "
                                        "alone: pip install ./client.)")
    commands = parser.add_subparsers(dest="command", required=True)
    _replay_parser(commands)
    _stream_parser(commands)
    _demo_parser(commands)
    return parser


def _names(paths: list[Path]) -> list[str]:
    names = [path.name.split(".")[0].removesuffix("_master") for path in paths]
    if len(set(names)) != len(names):
        raise ParameterError("two recordings have the same name; rename one")
    return names


def _live_view_opener():
    """Opens each session's live view in a new browser tab (and says where, without the tokens)."""
    import webbrowser

    def open_view(session) -> None:
        print(f"live view: {session.live_view_url(with_token=False)}", file=sys.stderr, flush=True)
        webbrowser.open_new_tab(session.live_view_url())

    return open_view


def run_replay(args: argparse.Namespace) -> None:
    from scan_client.client import ScanClient

    from ..device import choose_device
    from ..io.open import open_recording
    from .recorded import replay

    if min(args.positions) < 1 or args.final_iterations < 1:
        raise ParameterError("--positions and --final-iterations must be positive")
    overrides = metadata_overrides(args)
    acquisitions = [open_recording(path, overrides, args.metadata) for path in args.recordings]
    token = args.token or os.environ.get("SCAN_SERVER_TOKEN")
    with ScanClient(args.server, token, timeout_s=args.timeout) as client:
        served = client.health()["strategies"]  # all: every strategy this server offers now
        strategies = served if args.strategy == "all" else [args.strategy]
        report = replay(client, acquisitions, _names(args.recordings), strategies, args.positions,
                        args.final_iterations, args.out, args.seed, choose_device(args.device),
                        on_open=_live_view_opener() if args.view else None)
    print((args.out / "report.md").read_text())
    for warning in report["warnings"]:
        print(f"warning (server): {warning}", file=sys.stderr)
    print(f"wrote {args.out}/report.json, report.md, figures/ and positions/ ({len(report['recordings'])} recordings)")


def run_stream(args: argparse.Namespace) -> None:
    import zmq

    from ..io.open import open_recording
    from .stream import v1_messages, v2_messages

    if args.count is not None and args.count < 1:
        raise ParameterError(f"--count must be ≥ 1, got {args.count}")
    acquisition = open_recording(args.recording, metadata_overrides(args), args.metadata)
    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.bind(args.bind)
    sent = 0
    print(f"stream v{args.version} on {args.bind}: waiting for a receiver to connect (PULL)…", flush=True)
    try:
        messages = (v1_messages if args.version == 1 else v2_messages)(acquisition, count=args.count)
        for message in messages:
            socket.send_multipart(message) if isinstance(message, list) else socket.send(message)
            sent += 1
    finally:
        socket.close(linger=-1)
        context.term()
    print(f"sent {sent} stream v{args.version} messages on {args.bind} (header, "
          f"{sent - 2} frames, end of series)")


def _dispatch(args: argparse.Namespace) -> None:
    if args.command == "replay":
        run_replay(args)
    elif args.command == "stream":
        run_stream(args)
    else:
        from .demo import run_demo

        run_demo(args.out, args.positions, args.final_iterations, args.model)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return report_errors(lambda: _dispatch(args), (ScanServerError, ScanClientError))


if __name__ == "__main__":
    sys.exit(main())
