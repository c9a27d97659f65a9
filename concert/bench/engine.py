"""`concert bench engine`: real-time factors of the token engine, side by side in one run.

Printed keys: rtf_embedded (compute seconds per audio second of the embedded-size
model at its shipped precision, int8 weights, codec decode included; rtf_embedded_bf16 and
rtf_embedded_fp32 for the other precisions), seam_max_abs_diff (chunked vs whole decode), and —
when the MusicGen comparison runs — rtf_ours_musicgen, rtf_transformers_musicgen
and speedup_vs_transformers.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from engine.backends import DEFAULT_PRECISION, BackendConfig, build_source
from engine.codec.model import Codec, CodecConfig
from engine.generate.continuation import TokenSource
from engine.music.prompt import Prompt
from engine.source import AudioSource


def time_chunks(src: AudioSource, seconds: float) -> tuple[float, list[np.ndarray]]:
    """One warm-up chunk (allocations, first prefill), then chunks until `seconds` of audio.

    Returns the compute seconds per audio second of the timed chunks and their pcm.
    """
    src.next_chunk()
    pcm: list[np.ndarray] = []
    audio = compute = 0.0
    while audio < seconds:
        t0 = time.perf_counter()
        chunk = src.next_chunk()
        compute += time.perf_counter() - t0
        audio += chunk.seconds
        pcm.append(chunk.pcm)
    return compute / audio, pcm


def rtf_embedded(seconds: float = 10.0, threads: int = 2, seed: int = 0, precision: str = DEFAULT_PRECISION) -> float:
    """Compute seconds per audio second of the embedded-size model (random weights), codec decode included."""
    torch.set_num_threads(threads)
    src = build_source(BackendConfig(name="embedded", seed=seed, precision=precision), Prompt.of("house"))
    return time_chunks(src, seconds)[0]


def seam_max_abs_diff(seconds: float = 6.0, chunk_frames: int = 25, seed: int = 0) -> float:
    """Max |chunked − whole| decode of the embedded codec over random codes, in 0.5 s chunks."""
    codec = Codec.random(CodecConfig(), seed=seed)
    frames = int(seconds * codec.frame_rate)
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, codec.codebook_size, (1, codec.num_codebooks, frames), generator=g)  # (1, K, F)
    whole = codec.decode(codes)  # (1, F * hop)
    dec = codec.streaming_decoder()
    parts = [dec.push(codes[:, :, i : i + chunk_frames]) for i in range(0, frames, chunk_frames)]
    parts.append(dec.flush())
    chunked = torch.cat(parts, dim=1)  # (1, F * hop)
    n = min(chunked.shape[1], whole.shape[1])
    return float((chunked[:, :n] - whole[:, :n]).abs().max())


def bench_engine(
    seconds: float = 10.0, threads: int = 2, musicgen: bool = True, musicgen_seconds: float = 2.0, repeats: int = 3
) -> dict[str, object]:
    """Everything side by side in one run; the MusicGen pair (a few minutes on 2 cores) unless musicgen=False."""
    result: dict[str, object] = {"threads": threads}
    result["rtf_embedded"] = rtf_embedded(seconds, threads)  # the shipped precision: int8 weights, bf16 activations
    result["rtf_embedded_bf16"] = rtf_embedded(seconds, threads, precision="bfloat16")
    result["rtf_embedded_fp32"] = rtf_embedded(seconds, threads, precision="float32")
    lm = build_source(BackendConfig(name="embedded"), Prompt.of("house"))
    assert isinstance(lm, TokenSource)
    result["embedded_params_m"] = round(sum(p.numel() for p in lm.lm.parameters()) / 1e6, 2)
    result["seam_max_abs_diff"] = seam_max_abs_diff()
    if musicgen:
        from concert.bench.musicgen import bench_musicgen

        pair = bench_musicgen(musicgen_seconds, threads, repeats=repeats)
        result.update({k: round(v, 3) for k, v in pair.items()})
    return result
