"""`concert` command line: serve a set, render one offline, benchmark."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from concert.config import OUTPUTS, TEXT_MODEL, ServeConfig
from concert.crowd.aggregator import CROWD_MODES
from concert.outputs.icecast import IcecastConfig
from concert.server.limits import LimitsConfig
from engine.backends import BACKENDS, DEFAULT_BACKEND, DEFAULT_PRECISION, PRECISIONS

MODEL_HELP = "musicgen: a local MusicGen folder (HF format); embedded: a weights folder instead of the shipped one"
PRECISION_HELP = "token backends: int8 weights (fastest on CPU), bfloat16 or float32"


MAX_REQUEST_HEAD_BYTES = 64 * 1024  # request line + headers a client may send, bytes
KEEP_ALIVE_SECONDS = 5  # an idle keep-alive connection is closed after this, seconds
DESCRIPTOR_RESERVE = 256  # file descriptors kept back from client connections (files, Redis, the engine)


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one (each phone is a socket); returns the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from concert.server.app import create_app
    from concert.server.http import HeadDeadlineH11
    from concert.server.protocol import MAX_FRAME_BYTES
    from concert.server.runtime import PreflightError, preflight

    kwargs = dict(
        host=args.host,
        port=args.port,
        store=args.store,
        output=args.output,
        record=args.record,
        round_bars=args.round_bars,
        song_phrases=args.song_phrases,
        mode=args.mode,
        backend=args.backend,
        model_path=args.model,
        precision=args.precision,
        torch_threads=args.torch_threads,
        crossfade=args.crossfade,
        start_style=args.style,
        seed=args.seed,
        public_url=args.public_url,
        speakers_device=args.device,
        allowed_origins=tuple(args.allow_origin),
        workers=args.workers,
        standbys=args.standbys,
        lease_s=args.lease,
        status_line=args.workers <= 1 and not args.no_status,
        text_model=args.text_model,
    )
    if args.dj_token:
        kwargs["dj_token"] = args.dj_token
    if args.secret_file is not None:
        try:
            kwargs["secret"] = args.secret_file.read_bytes().strip()
        except OSError as e:
            print(f"concert serve: cannot read --secret-file {args.secret_file}: {e.strerror}", file=sys.stderr)
            return 2
    try:
        kwargs["limits"] = LimitsConfig(
            connections_per_address=args.per_address_connections,
            new_devices_per_minute=args.per_address_new_devices,
            device_messages_per_minute=args.device_messages_per_minute,
            address_messages_per_minute=args.address_messages_per_minute,
        )
        kwargs["icecast"] = tuple(IcecastConfig(url) for url in args.icecast)
        config = ServeConfig(**kwargs)  # type: ignore[arg-type]
    except ValueError as e:
        print(f"concert serve: {e}", file=sys.stderr)
        return 2
    try:
        preflight(config)
    except PreflightError as e:
        print(f"concert serve: {e}", file=sys.stderr)
        return 2
    if config.backend != "synth":  # the token model's threads, set once here: the other core serves the crowd
        import torch

        torch.set_num_threads(config.torch_threads)
    from concert.server.terminal import banner

    print(banner(config, qr=not args.no_qr), end="", flush=True)
    descriptors = raise_descriptor_limit()
    server = dict(
        http=HeadDeadlineH11,  # h11 bounds the request head (httptools read 32 MiB of headers) and times it out
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=max(64, descriptors - DESCRIPTOR_RESERVE),  # beyond: 503, not a dead server
        ws_max_size=MAX_FRAME_BYTES,
        ws_per_message_deflate=False,
        log_level=args.log_level,
        lifespan="on",
    )
    if config.workers > 1:
        from concert.cluster.supervisor import Supervisor

        print(f"concert: {config.workers} web workers, 1 + {config.standbys} conductor processes", flush=True)
        return Supervisor(config, server, log_level=args.log_level).run()
    uvicorn.run(create_app(config), host=config.host, port=config.port, **server)  # type: ignore[arg-type]
    return 0


def _soak(args: argparse.Namespace) -> int:
    import json

    from concert.playback.soak import SoakConfig, run_soak, summary

    try:
        config = SoakConfig(
            hours=args.hours,
            speed=args.speed,
            backend=args.backend,
            store=args.store,
            record=args.record,
            rotate_seconds=args.rotate_seconds,
            seed=args.seed,
        )
    except ValueError as e:
        print(f"concert soak: {e}", file=sys.stderr)
        return 2
    result = run_soak(config)
    if not args.json:
        print(summary(result))
    print(json.dumps(result), flush=True)
    return 0


def _render(args: argparse.Namespace) -> int:
    from concert.playback.render import RenderError, render_to_file

    try:
        info = render_to_file(
            style=args.style,
            seconds=args.seconds,
            out=args.out,
            script=args.script,
            backend=args.backend,
            model_path=args.model,
            precision=args.precision,
            seed=args.seed,
            round_bars=args.round_bars,
        )
    except RenderError as e:
        print(f"concert render: {e}", file=sys.stderr)
        return 2
    print(info.summary(), flush=True)
    return 0


def _bench(args: argparse.Namespace) -> int:
    import json

    result: Mapping[str, object]
    if args.against is not None:
        from concert.bench.compare import CompareError, compare

        argv = _bench_argv(args)
        try:
            result = compare(Path(__file__).resolve().parent.parent, args.against.resolve(), argv, args.rounds)
        except CompareError as e:
            print(f"concert bench: {e}", file=sys.stderr)
            return 2
    elif args.what == "engine":
        from concert.bench.engine import bench_engine

        result = bench_engine(
            seconds=args.seconds or 10.0,
            threads=args.threads,
            musicgen=not args.no_musicgen,
            musicgen_seconds=args.musicgen_seconds,
            repeats=args.repeats,
        )
    elif args.what == "synth":
        from concert.bench.synth import bench_synth

        result = bench_synth(seconds=args.seconds or 60.0)
    else:
        from concert.bench.votes import VoteBenchConfig, run_vote_bench

        result = run_vote_bench(
            VoteBenchConfig(
                clients=args.clients,
                rate=args.rate,
                seconds=args.seconds or 20.0,
                store=args.store,
                workers=args.workers,
                processes=args.client_processes,
                floor=not args.no_floor,
            )
        )
    if not args.json:
        for k, v in result.items():
            print(f"{k:>20}: {v}")
    print(json.dumps(result), flush=True)
    return 0


def _bench_argv(args: argparse.Namespace) -> list[str]:
    """The bench's own arguments, to run the same benchmark in another checkout."""
    argv = [args.what, "--threads", str(args.threads), "--clients", str(args.clients), "--rate", str(args.rate)]
    argv += ["--workers", str(args.workers), "--client-processes", str(args.client_processes)]
    argv += ["--store", args.store, "--musicgen-seconds", str(args.musicgen_seconds), "--repeats", str(args.repeats)]
    if args.seconds is not None:
        argv += ["--seconds", str(args.seconds)]
    if args.no_musicgen:
        argv.append("--no-musicgen")
    if args.no_floor:
        argv.append("--no-floor")
    return argv


def _paths(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from engine.train.commands import Paths

    return Paths(home=args.home, corpus_seed=args.corpus_seed)


def _corpus(args: argparse.Namespace) -> int:
    from engine.train.commands import corpus
    from engine.train.corpus import CorpusConfig

    built = corpus(_paths(args), CorpusConfig(seed=args.corpus_seed, train_hours=args.hours), workers=args.workers)
    print(f"concert corpus: {built.folder}: {built.hours}", flush=True)
    return 0


def _train(args: argparse.Namespace) -> int:
    import json

    import torch

    from engine.embedded.weights import SHIPPED
    from engine.train import commands
    from engine.train.loop import RunConfig

    torch.set_num_threads(args.threads)
    run = RunConfig(
        run_dir=args.home,  # replaced by the run's own folder
        minutes=args.minutes,
        max_steps=args.steps,
        checkpoint_minutes=args.checkpoint_minutes,
        progress=not args.no_progress,
        clock="wall" if args.device.startswith("cuda") else "process",
    )
    shipped = None if args.scratch else SHIPPED
    if args.what == "codec":
        from engine.train.codec_train import CodecTrainConfig

        config = CodecTrainConfig(device=args.device, decoder_only=args.decoder_only)
        result = commands.train_codec(_paths(args), config, run, shipped)
    else:
        from engine.train.lm_train import LMTrainConfig

        result = commands.train_lm(_paths(args), LMTrainConfig(device=args.device), run, shipped, args.codec)
    summary = {"step": result.step, "hours": round(result.hours, 3), "resumed_from": result.resumed_from}
    print(json.dumps({**summary, **result.last, **result.held_out}), flush=True)
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from engine.embedded.weights import SHIPPED
    from engine.train.commands import export

    summary = export(_paths(args), args.out or SHIPPED, args.figures, shipped=SHIPPED)
    print(json.dumps(summary), flush=True)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from engine.embedded.weights import SHIPPED
    from engine.train.commands import _open_corpus
    from engine.train.evaluate import EvalConfig, evaluate

    config = EvalConfig(set_seconds=args.set_seconds, threads=args.threads, precision=args.precision)
    out = args.out or args.home / "eval"
    result = evaluate(args.weights or SHIPPED, _open_corpus(_paths(args)), config, out)
    if not args.json:
        for k, v in result.items():
            print(f"{k:>28}: {v}")
    print(f"concert eval: spectrograms and set_3min.wav in {out}", file=sys.stderr, flush=True)
    line = json.dumps(result)
    (out / "eval.json").write_text(line + "\n")
    print(line, flush=True)
    return 0


def _add_training_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    home = Path.home() / ".cache" / "concert"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", type=Path, default=home, help="run state: corpus, checkpoints, tokens, logs")
    common.add_argument("--corpus-seed", type=int, default=0, help="which corpus (seeded)")
    common.add_argument("--threads", type=int, default=2, help="torch threads")

    c = sub.add_parser("corpus", parents=[common], help="render the training corpus (resumable)")
    c.add_argument("--hours", type=float, default=10.0, help="hours of training audio")
    c.add_argument("--workers", type=int, default=2, help="rendering processes")
    c.set_defaults(func=_corpus)

    t = sub.add_parser("train", parents=[common], help="train the codec or the token model (resumes automatically)")
    t.add_argument("what", choices=("codec", "lm"))
    t.add_argument("--minutes", type=float, default=None, help="compute budget of this run, minutes")
    t.add_argument("--steps", type=int, default=None, help="stop at this total step count")
    t.add_argument("--checkpoint-minutes", type=float, default=5.0, help="minutes between checkpoints (<= 10)")
    t.add_argument("--device", default="cpu", help="cpu, or cuda where there is a GPU")
    t.add_argument("--decoder-only", action="store_true", help="codec: train the decoder only (tokens stay valid)")
    t.add_argument("--codec", type=Path, default=None, help="lm: codec folder (default: the codec run's export)")
    t.add_argument("--scratch", action="store_true", help="a new run starts from scratch, not the shipped weights")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = sub.add_parser("export", parents=[common], help="write the float16 weights folder and its model card")
    e.add_argument("--out", type=Path, default=None, help="folder (default: the package's shipped weights)")
    e.add_argument("--figures", type=Path, default=None, help="eval.json to put in the model card")
    e.set_defaults(func=_export)

    v = sub.add_parser("eval", parents=[common], help="score the embedded model; the last line is one JSON object")
    v.add_argument("--weights", type=Path, default=None, help="weights folder (default: the shipped weights)")
    v.add_argument("--set-seconds", type=float, default=3600.0, help="audio generated for the scripted set")
    v.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help=PRECISION_HELP)
    v.add_argument("--out", type=Path, default=None, help="folder for the PNGs, WAV and eval.json")
    v.add_argument("--json", action="store_true", help="print only the JSON line")
    v.set_defaults(func=_eval)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="concert", description="Crowd-steered, endless AI music.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a live set: audience page, websocket votes, HTTP stream")
    s.add_argument("--host", default=ServeConfig.host, help="interface to bind (0.0.0.0 for phones on the LAN)")
    s.add_argument("--port", type=int, default=ServeConfig.port)
    s.add_argument("--store", default=ServeConfig.store, help="memory:// or redis://host:port/db")
    s.add_argument(
        "--output", choices=OUTPUTS, default=ServeConfig.output, help="local output besides the HTTP /stream"
    )
    s.add_argument("--device", default=None, help="sound device for --output speakers")
    s.add_argument("--record", type=Path, default=None, help="directory for the recording and setlist")
    s.add_argument(
        "--text-model",
        choices=TEXT_MODEL,
        default=ServeConfig.text_model,
        help="suggestions in any words, read by a sentence encoder: auto (when installed), on, off",
    )
    s.add_argument(
        "--icecast",
        action="append",
        default=[],
        metavar="URL",
        help="push the set to Icecast: http://source:PASSWORD@host:port/mount.mp3 (.opus: Ogg Opus); repeatable",
    )
    s.add_argument("--round-bars", type=int, default=ServeConfig.round_bars, help="bars per phrase / live-moves round")
    s.add_argument(
        "--song-phrases", type=int, default=ServeConfig.song_phrases, help="phrases per song (direction round)"
    )
    s.add_argument("--mode", choices=CROWD_MODES, default=ServeConfig.mode)
    s.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    s.add_argument("--model", type=Path, default=None, help=MODEL_HELP)
    s.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help=PRECISION_HELP)
    s.add_argument(
        "--torch-threads",
        type=int,
        default=ServeConfig.torch_threads,
        help="token backends: torch threads (one core stays free)",
    )
    s.add_argument(
        "--crossfade",
        type=float,
        default=ServeConfig.crossfade,
        help="seconds of crossfade when the synth covers a lag",
    )
    s.add_argument("--style", default=ServeConfig.start_style, help="genre id the set opens with")
    s.add_argument("--seed", type=int, default=ServeConfig.seed)
    s.add_argument("--dj-token", default=None, help="operator console token (random if omitted)")
    s.add_argument(
        "--secret-file",
        type=Path,
        default=None,
        help="key that signs device cookies (>= 16 bytes; random if omitted): the same on every host of one set",
    )
    s.add_argument("--public-url", default=None, help="URL for the QR code, e.g. http://192.168.1.20:8000/")
    s.add_argument("--log-level", default="info")
    s.add_argument("--no-qr", action="store_true", help="do not draw the join QR code in the terminal")
    s.add_argument("--no-status", action="store_true", help="no status line (backend, buffered audio, phones)")
    limits = LimitsConfig()
    s.add_argument("--allow-origin", action="append", default=[], help="another web origin that may open the socket")
    s.add_argument(
        "--workers",
        type=int,
        default=ServeConfig.workers,
        help="web worker processes on the one port; more than 1 plays the set in a conductor process (needs redis)",
    )
    s.add_argument(
        "--standbys", type=int, default=ServeConfig.standbys, help="with --workers > 1: standby conductor processes"
    )
    s.add_argument(
        "--lease", type=float, default=ServeConfig.lease_s, help="seconds of the conductor's Redis lease (fail-over)"
    )
    s.add_argument(
        "--per-address-connections",
        type=int,
        default=limits.connections_per_address,
        help="websockets one network address may hold open (raise for a venue behind one NAT)",
    )
    s.add_argument(
        "--per-address-new-devices",
        type=float,
        default=limits.new_devices_per_minute,
        help="new phones one network address may join per minute (raise for a venue behind one NAT)",
    )
    s.add_argument("--device-messages-per-minute", type=float, default=limits.device_messages_per_minute)
    s.add_argument("--address-messages-per-minute", type=float, default=limits.address_messages_per_minute)
    s.set_defaults(func=_serve)

    r = sub.add_parser("render", help="render a set offline from a steering script")
    r.add_argument("--style", default="house", help="opening style: genre id or free text")
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--out", type=Path, required=True, help="output file (.wav, .flac, .ogg, .mp3)")
    r.add_argument("--script", type=Path, default=None, help="steering JSON: [{at, prompt, bpm?, energy?}]")
    r.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    r.add_argument("--model", type=Path, default=None, help=MODEL_HELP)
    r.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help=PRECISION_HELP)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--round-bars", type=int, default=8, help="bars per phrase for the arrangement")
    r.set_defaults(func=_render)

    rp = sub.add_parser("report", help="a recorded set as one HTML page and a setlist.json; last line JSON")
    rp.add_argument("dir", type=Path, help="the folder --record wrote (or one set's folder in it)")
    rp.add_argument("--out", type=Path, default=None, help="the page (default: report.html in the set's folder)")
    rp.set_defaults(func=_report)

    k = sub.add_parser("soak", help="the live audio path for hours, faster than real time, under a simulated crowd")
    k.add_argument("--hours", type=float, default=24.0, help="audio hours to play")
    k.add_argument("--speed", type=float, default=0.0, help="times real time (0: as fast as the engine renders)")
    k.add_argument("--backend", choices=("synth", "embedded"), default="synth")
    k.add_argument("--store", default=ServeConfig.store, help="memory:// or redis://host:port/db")
    k.add_argument("--record", type=Path, default=None, help="keep the recording here (default: a temporary folder)")
    k.add_argument("--rotate-seconds", type=float, default=3600.0, help="audio per recording file")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--json", action="store_true", help="print only the JSON line")
    k.set_defaults(func=_soak)

    b = sub.add_parser("bench", help="benchmarks; the last line printed is one JSON object")
    b.add_argument("what", choices=("votes", "synth", "engine"))
    b.add_argument("--threads", type=int, default=2, help="engine: torch threads")
    b.add_argument("--no-musicgen", action="store_true", help="engine: skip the MusicGen pair (minutes on a CPU)")
    b.add_argument("--musicgen-seconds", type=float, default=2.0, help="engine: audio per MusicGen run")
    b.add_argument("--repeats", type=int, default=3, help="engine: alternating MusicGen runs, medians reported")
    b.add_argument("--clients", type=int, default=1000)
    b.add_argument("--rate", type=float, default=500.0, help="total votes per second")
    b.add_argument("--seconds", type=float, default=None, help="votes: voting time (20); synth: audio rendered (60)")
    b.add_argument("--store", default=ServeConfig.store)
    b.add_argument("--workers", type=int, default=1, help="votes: server web workers (more than 1 needs redis)")
    b.add_argument("--client-processes", type=int, default=2, help="votes: processes the crowd runs in")
    b.add_argument("--no-floor", action="store_true", help="votes: skip the bare-websockets floor run")
    b.add_argument("--json", action="store_true", help="print only the JSON line")
    b.add_argument("--against", type=Path, default=None, help="another checkout: run there too, side by side")
    b.add_argument("--rounds", type=int, default=1, help="--against: alternating runs per side (medians)")
    b.set_defaults(func=_bench)
    _add_training_parsers(sub)
    return p


def _report(args: argparse.Namespace) -> int:
    import json

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("concert report draws with matplotlib: pip install 'concert[report]'", file=sys.stderr)
        return 2
    from concert.report.page import report

    done = report(args.dir, args.out)
    print(f"concert report: {done.page} and {done.setlist}", flush=True)
    print(json.dumps({"page": str(done.page), "setlist": str(done.setlist), **done.stats}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ValueError as e:
        print(f"concert: {e}", file=sys.stderr)
        return 2
