"""What `concert corpus`, `concert train codec|lm` and `concert export` do; the CLI only parses arguments.

Run state lives under one home folder (default ~/.cache/concert, chosen at the entry point), never in the repo:

    <home>/corpus/seed<N>/          the rendered corpus (engine.train.corpus)
    <home>/runs/codec/              codec checkpoint, log.csv, curves.png, export/ (HF codec of the last checkpoint)
    <home>/tokens/<fp>-<corpus>/    the corpus tokenised by one codec (fingerprint) from one corpus (its config key)
    <home>/runs/lm/                 token-model checkpoint, log.csv, curves.png, lm.safetensors

A run with no checkpoint starts from the shipped weights when they exist (so training resumes on a fresh
machine from the committed snapshot), else from scratch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from engine.embedded.weights import TrainedFor, trained_for
from engine.train.codec_train import CodecJob, CodecTrainConfig
from engine.train.corpus import Corpus, CorpusConfig, build_corpus
from engine.train.lm_train import LMJob, LMTrainConfig
from engine.train.loop import CHECKPOINT, RunConfig, RunResult, load_checkpoint, run
from engine.train.tokens import TokenSet, codec_fingerprint, tokenize_corpus


@dataclass(frozen=True)
class Paths:
    home: Path  # root of all run state
    corpus_seed: int = 0

    @property
    def corpus(self) -> Path:
        return self.home / "corpus" / f"seed{self.corpus_seed}"

    @property
    def codec_run(self) -> Path:
        return self.home / "runs" / "codec"

    @property
    def codec_export(self) -> Path:
        return self.codec_run / "export"

    @property
    def lm_run(self) -> Path:
        return self.home / "runs" / "lm"

    @property
    def lm_export(self) -> Path:
        return self.lm_run / "lm.safetensors"

    def tokens(self, fingerprint: str, corpus: CorpusConfig) -> Path:
        return self.home / "tokens" / f"{fingerprint}-{corpus.key}"


def corpus(paths: Paths, config: CorpusConfig, workers: int) -> Corpus:
    return build_corpus(paths.corpus, config, workers=workers)


def _open_corpus(paths: Paths) -> Corpus:
    if not (paths.corpus / "corpus.json").is_file():
        print(f"concert train: no corpus in {paths.corpus} yet; rendering it first (concert corpus)", flush=True)
        return build_corpus(paths.corpus, CorpusConfig(seed=paths.corpus_seed), workers=2)
    return Corpus(paths.corpus)


def train_codec(paths: Paths, config: CodecTrainConfig, run_config: RunConfig, shipped: Path | None) -> RunResult:
    from engine.embedded.weights import CODEC_DIR, load_codec

    corpus = _open_corpus(paths)
    init, start = None, TrainedFor(0, 0.0)
    fresh = not (paths.codec_run / CHECKPOINT).is_file()
    if fresh and shipped is not None and (shipped / CODEC_DIR).is_dir():
        init, start = load_codec(shipped / CODEC_DIR), trained_for(shipped, "codec")
        print(
            f"concert train codec: starting from the shipped codec {shipped / CODEC_DIR} ({start.steps} steps)",
            flush=True,
        )
    job = CodecJob(corpus, config, paths.codec_export, init=init)
    if not fresh and not (paths.codec_export / "config.json").is_file():
        raise FileNotFoundError(f"{paths.codec_export} is missing though {paths.codec_run} has a checkpoint")
    run_config = replace(run_config, run_dir=paths.codec_run)
    return run(job, "codec", run_config, seed=config.seed, start=(start.steps, start.hours))


def _codec_for_lm(paths: Paths, codec_dir: Path | None, shipped: Path | None) -> Path:
    from engine.embedded.weights import CODEC_DIR

    if codec_dir is not None:
        return codec_dir
    if (paths.codec_export / "config.json").is_file():
        return paths.codec_export
    if shipped is not None and (shipped / CODEC_DIR / "config.json").is_file():
        return shipped / CODEC_DIR
    raise FileNotFoundError(f"no trained codec in {paths.codec_export} or the shipped weights; train the codec first")


def train_lm(
    paths: Paths, config: LMTrainConfig, run_config: RunConfig, shipped: Path | None, codec_dir: Path | None = None
) -> RunResult:
    from engine.backends import embedded_lm_config
    from engine.embedded.weights import LM_FILE, load_codec, load_lm

    codec = load_codec(_codec_for_lm(paths, codec_dir, shipped))
    fingerprint = codec_fingerprint(codec)
    ckpt = paths.lm_run / CHECKPOINT
    if ckpt.is_file():
        made_with = load_checkpoint(ckpt, "lm").get("meta", {}).get("codec")
        if made_with != fingerprint:
            raise ValueError(
                f"{ckpt} was trained on tokens of codec {made_with}, but the codec now is {fingerprint}; "
                "move the run away to start a new one, or train the codec with --decoder-only (keeps the tokens)"
            )
    corpus = _open_corpus(paths)
    folder = paths.tokens(fingerprint, corpus.config)
    try:
        tokens = TokenSet(folder)
    except Exception:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        tokens = tokenize_corpus(corpus, codec, folder)
    init, start = None, TrainedFor(0, 0.0)
    if not ckpt.is_file() and shipped is not None and (shipped / LM_FILE).is_file():
        candidate = load_lm(shipped / LM_FILE)
        if candidate.config == embedded_lm_config() and (shipped / "codec").is_dir():
            from engine.embedded.weights import CODEC_DIR

            if codec_fingerprint(load_codec(shipped / CODEC_DIR)) == fingerprint:
                init, start = candidate, trained_for(shipped, "lm")
                print(
                    f"concert train lm: starting from the shipped model {shipped / LM_FILE} ({start.steps} steps)",
                    flush=True,
                )
    job = LMJob(tokens, embedded_lm_config(), config, paths.lm_export, init=init)
    meta = {"codec": fingerprint}
    run_config = replace(run_config, run_dir=paths.lm_run)
    return run(job, "lm", run_config, seed=config.seed, meta=meta, start=(start.steps, start.hours))


def export(paths: Paths, out: Path, figures: Path | None = None, shipped: Path | None = None) -> dict[str, object]:
    """Write the float16 weights folder (codec, token model, model card) from the runs' last checkpoints.

    Each part comes from its run when this machine has one, else from `shipped` with its training record: a
    fresh machine that trained only one part on, from the committed snapshot, exports it with the other part of
    the snapshot."""
    from engine.embedded.weights import CODEC_DIR, LM_FILE, load_codec, load_lm, save_embedded

    def record(meta: dict[str, Any]) -> TrainedFor:
        return TrainedFor(int(meta["step"]), float(meta["hours"]), dict(meta.get("held_out", {})))

    def missing(part: str, run_dir: Path) -> FileNotFoundError:
        return FileNotFoundError(f"no {part} run in {run_dir} and no shipped {part} to export with the other part")

    if (paths.codec_run / CHECKPOINT).is_file():
        codec, codec_source = load_codec(paths.codec_export), paths.codec_export
        codec_record = record(load_checkpoint(paths.codec_run / CHECKPOINT, "codec"))
    elif shipped is not None and (shipped / CODEC_DIR / "config.json").is_file():
        codec, codec_source = load_codec(shipped / CODEC_DIR), shipped / CODEC_DIR
        codec_record = trained_for(shipped, "codec")
    else:
        raise missing("codec", paths.codec_run)
    if (paths.lm_run / CHECKPOINT).is_file():
        lm_meta = load_checkpoint(paths.lm_run / CHECKPOINT, "lm")
        lm, lm_source, lm_record = load_lm(paths.lm_export), paths.lm_export, record(lm_meta)
        made_with = lm_meta.get("meta", {}).get("codec")
    elif shipped is not None and (shipped / LM_FILE).is_file():
        lm, lm_source, lm_record = load_lm(shipped / LM_FILE), shipped / LM_FILE, trained_for(shipped, "lm")
        made_with = codec_fingerprint(load_codec(shipped / CODEC_DIR))
    else:
        raise missing("lm", paths.lm_run)
    if made_with != codec_fingerprint(codec):
        raise ValueError(f"{lm_source} was trained on tokens of another codec than {codec_source}")
    summary: dict[str, object] = {
        "codec_steps": codec_record.steps,
        "codec_cpu_hours": round(codec_record.hours, 2),
        "codec_held_out": codec_record.held_out,
        "lm_steps": lm_record.steps,
        "lm_cpu_hours": round(lm_record.hours, 2),
        "lm_held_out": lm_record.held_out,
        "lm_params_m": round(lm.num_params / 1e6, 2),
        "codec_shape": f"{codec.num_codebooks} x {codec.codebook_size} at {codec.frame_rate} Hz",
    }
    evaluation = json.loads(figures.read_text()) if figures is not None and figures.is_file() else None
    training = {"codec": codec_record, "lm": lm_record}
    save_embedded(out, lm, codec, card=model_card(summary, evaluation), training=training)
    return summary


def model_card(summary: dict[str, object], evaluation: dict[str, object] | None) -> str:
    from engine.train.corpus import CorpusConfig

    corpus = CorpusConfig()
    lines = [
        "# The embedded model (codec + token LM)",
        "",
        "Trained by `concert train codec` and `concert train lm` on this project's own corpus (`concert corpus`):",
        f"{corpus.train_hours:g} h of sets rendered by the procedural style synth through its steering path",
        f"({corpus.train_pieces} pieces of {corpus.piece_seconds:g} s: every genre, tempos across each range,",
        "energies, sections, segues, tempo ramps and drops landing on bars), plus "
        f"{corpus.holdout_pieces} held-out pieces seeded apart. No external data, no downloads.",
        "",
        "| part | steps | compute hours | held-out figures |",
        "|---|---|---|---|",
        f"| codec (EnCodec architecture, {summary['codec_shape']}) | {summary['codec_steps']} | "
        f"{summary['codec_cpu_hours']} | {_figures(summary['codec_held_out'])} |",
        f"| token LM ({summary['lm_params_m']} M parameters) | {summary['lm_steps']} | "
        f"{summary['lm_cpu_hours']} | {_figures(summary['lm_held_out'])} |",
        "",
        "Compute hours are the CPU time of the training loop's steps on a 2-core CPU (1 or 2 torch threads a run;",
        "no GPU minutes so far); a run paused or starved counts nothing. Earlier runs counted the steps' wall time;",
        "their pauses were taken out by replacing each outlying logged interval with the run's median step time.",
        "Weights are float16 safetensors; the codec is in Hugging Face `EncodecModel` format.",
    ]
    if evaluation is not None:
        lines += ["", "## `concert eval --json`", "", "```json", json.dumps(evaluation, indent=1), "```"]
    return "\n".join(lines) + "\n"


def _figures(held_out: object) -> str:
    if not isinstance(held_out, dict) or not held_out:
        return "-"
    return ", ".join(f"{k} {v:.3g}" for k, v in held_out.items() if isinstance(v, float | int))
