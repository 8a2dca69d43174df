"""`fer-edge`: argument parsing only; the work lives in service, predict, benchmark and install."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

CONFIG_ENV = "FER_EDGE_CONFIG"
SOURCE_ENV = "FER_EDGE_SOURCE"
CONFIG_SEARCH = (Path("config.yaml"), Path("/etc/fer-edge/config.yaml"))

EXAMPLE = """examples:
  fer-edge --print                                   camera 0, events as JSON lines
  fer-edge --source ../shared/data/videos/woman2.mp4 --print
  fer-edge --check-config --config /etc/fer-edge/config.yaml
  fer-edge predict face.jpg --out annotated.jpg
  fer-edge predict --whole faces/                    one JSON line per pre-cropped face image
  fer-edge --benchmark --source clip.mp4 --json
  fer-edge --benchmark --watch                       the same with a client watching the preview
  fer-edge --benchmark --source clip.mp4 --tile 3    a group: the clip as a 3x3 grid of itself
  fer-edge doctor                                    one line per check, with a fix
  fer-edge history --csv --since 2026-12-01          the visits since then, as CSV
  sudo fer-edge install-service"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fer-edge", description="Real-time facial emotion recognition daemon.",
                                epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help=f"config YAML (default: ${CONFIG_ENV}, ./config.yaml, "
                   "/etc/fer-edge/config.yaml, else built-in defaults)")
    p.add_argument("--source", help=f"camera index, /dev/videoN, video file, URL or 'picamera' (env ${SOURCE_ENV})")
    p.add_argument("--model", type=Path, help="int8 .tflite (its card is the .json beside it)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=float, help="FPS target; 0 = as fast as possible (a file is then not paced)")
    rate.add_argument("--max-rate", action="store_const", const=0.0, dest="fps", help="the same as --fps 0")
    p.add_argument("--playback-fps", type=float, help="play a video file at this rate instead of its own")
    p.add_argument("--print", action="store_true", help="print events and state as JSON lines on stdout")
    p.add_argument("--max-frames", type=int, help="stop after N processed frames")
    p.add_argument("--duration", type=float, help="stop after S seconds")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--check-config", action="store_true", help="validate the config and exit")
    p.add_argument("--benchmark", action="store_true", help="measure per-stage latency on --source (default: a generated clip of a drawn face) and exit")
    p.add_argument("--json", action="store_true", help="with --benchmark: one JSON object instead of a table")
    p.add_argument("--watch", action="store_true", help="with --benchmark: a client watches the page's preview throughout")
    p.add_argument("--tile", type=int, default=1, metavar="N",
                   help="with --benchmark: play the clip as an N x N grid of itself at other time offsets (N^2 faces)")
    sub = p.add_subparsers(dest="command")
    pr = sub.add_parser("predict", help="emotions of the faces in still images")
    pr.add_argument("images", nargs="+", type=Path, help="image files, or folders searched for them")
    pr.add_argument("--out", type=Path, help="annotated copy (one image) or folder (several)")
    pr.add_argument("--whole", action="store_true",
                    help="each image is one face crop (e.g. an aligned-face dataset): no face detection")
    doc = sub.add_parser("doctor", help="check camera, model, Haar file, config, broker, port, temperature and memory")
    for flag in ("--config", "--source"):  # also after the subcommand: `fer-edge doctor --config X`
        doc.add_argument(flag, type=Path if flag == "--config" else str, default=argparse.SUPPRESS)
    his = sub.add_parser("history", help="the visits kept on this device, as JSON lines or CSV")
    his.add_argument("--since", help="ISO 8601 date or time (default: today's midnight)")
    his.add_argument("--until", help="ISO 8601 date or time (default: now)")
    his.add_argument("--csv", action="store_true", help="CSV with a column per emotion, instead of JSON lines")
    his.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    ins = sub.add_parser("install-service", help="install the systemd unit and default config (root)")
    ins.add_argument("--root", type=Path, default=Path("/"), help="install under this root (for packaging)")
    ins.add_argument("--no-enable", action="store_true", help="do not run systemctl enable --now")
    return p


def _overrides(args: argparse.Namespace) -> dict:
    out = {}
    source = args.source or os.environ.get(SOURCE_ENV)
    if source:
        out["source.uri"] = source
    if args.model:
        out["model.path"] = args.model
    if args.fps is not None:
        out["pacer.fps"] = args.fps
        if args.fps == 0:
            out["source.realtime"] = False
    if args.playback_fps is not None:
        out["source.playback_fps"] = args.playback_fps
    if args.log_level:
        out["logging.level"] = args.log_level
    return out


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config:
        return args.config
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return next((p for p in CONFIG_SEARCH if p.is_file()), None)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.tile <= 6:
        parser.error("--tile: N from 1 to 6")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from edge.service import SETUP_ERRORS, Daemon, RunOptions, resolve_config

    opts = RunOptions(_config_path(args), _overrides(args), args.print, args.max_frames, args.duration)
    try:
        if args.check_config:
            resolve_config(opts)
            print(f"{opts.config_path or 'built-in defaults'}: OK")
            return 0
        if args.command == "predict":
            from edge.predict import predict_images
            return predict_images(resolve_config(opts), args.images, args.out, args.whole)
        if args.command == "doctor":
            from edge.doctor import doctor
            return doctor(opts)
        if args.command == "history":
            from edge.history_cli import print_history
            return print_history(resolve_config(opts), args.since, args.until, args.csv)
        if args.command == "install-service":
            from edge.install import install_service
            return install_service(args.root, enable=not args.no_enable)
        if args.benchmark:
            from edge.benchmark import benchmark
            return benchmark(opts, as_json=args.json, watch=args.watch, tile=args.tile)
        return Daemon(opts).run()
    except SETUP_ERRORS as e:
        print(f"fer-edge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout's reader went away (`fer-edge predict DIR | head`): stop quietly
        from edge.publish.stdout import detach_stdout

        detach_stdout()
        return 0


if __name__ == "__main__":
    sys.exit(main())
