"""`concert bench engine`'s MusicGen pair: our streaming loop vs transformers' `generate` on the same weights.

Both run the musicgen-small architecture as published (T5-base text encoder, a 24-layer decoder of width 1024
with 16 heads over 4 codebooks of 2048, EnCodec 32 kHz) with the same seeded random weights — nothing is
downloaded — batch 1, top-k 250 sampling, classifier-free guidance 3.0 over rows [null text, prompt text], the
same text ids, the same threads. Each is reported as compute seconds per second of audio (RTF; < 1 is faster
than real time), codec decode included:

    ours:          musicgen_source (TokenSource: LMStream rows [null, text] -> guided_step -> sample
                   -> 0.5 s chunks -> StreamingDecoder), timed over next_chunk() after one warm-up chunk
    transformers:  model.generate(input_ids, do_sample=True, top_k=250, guidance_scale=3.0) after a short
                   warm-up call; text encode, every step and the audio decode of the whole clip
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from concert.bench.engine import time_chunks
from engine.backends import DEFAULT_PRECISION, with_precision
from engine.generate.continuation import ContinuationConfig
from engine.music.prompt import Prompt
from engine.musicgen.source import TextCondition, Tokenizer, musicgen_source, text_tokenizer
from engine.musicgen.weights import MusicgenParts, load_musicgen

if TYPE_CHECKING:
    from transformers import MusicgenConfig, MusicgenForConditionalGeneration

CFG_SCALE = 3.0  # classifier-free guidance scale, MusicGen's default
TOP_K = 250  # sample among the 250 most likely tokens, MusicGen's default
CHUNK_S = 0.5  # seconds of audio per next_chunk (our loop)
BENCH_PROMPT = Prompt.of("house")  # both sides get this prompt's text ("house music, 124 bpm, ...") as ids


@dataclass(frozen=True)
class Run:
    """One timed generation: its real-time factor and the audio it made."""

    rtf: float  # compute seconds per second of audio
    audio: Tensor  # (samples,) float32 mono at sample_rate
    sample_rate: int  # Hz

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


def musicgen_small_config() -> MusicgenConfig:
    """facebook/musicgen-small's architecture, built offline: T5-base, the 24-layer decoder, EnCodec 32 kHz."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(  # t5-base
        vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
        relative_attention_num_buckets=32, feed_forward_proj="relu",
    )  # fmt: skip
    audio = EncodecConfig(  # facebook/encodec_32khz: 4 codebooks of 2048 at 50 Hz (2.2 kbps)
        sampling_rate=32000, audio_channels=1, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
        codebook_size=2048, target_bandwidths=[2.2], num_lstm_layers=2, normalize=False,
        use_causal_conv=False, use_conv_shortcut=False,
    )  # fmt: skip
    decoder = MusicgenDecoderConfig(  # musicgen-small's decoder
        vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=24, ffn_dim=4096, num_attention_heads=16,
        hidden_size=1024, num_codebooks=4, activation_function="gelu", pad_token_id=2048, bos_token_id=2048,
    )  # fmt: skip
    return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def musicgen_from_config(config: MusicgenConfig, seed: int = 0) -> MusicgenForConditionalGeneration:
    """A MusicgenForConditionalGeneration with seeded random weights, in eval mode; the global RNG is restored."""
    from transformers import MusicgenForConditionalGeneration

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MusicgenForConditionalGeneration(config).eval()


def musicgen_small_random(seed: int = 0) -> MusicgenForConditionalGeneration:
    """musicgen-small's architecture (≈ 590 M parameters in float32) with seeded random weights, in eval mode."""
    return musicgen_from_config(musicgen_small_config(), seed)


def prompt_ids(tokenizer: Tokenizer, prompt: Prompt = BENCH_PROMPT) -> Tensor:
    """The text ids (1, S) our loop feeds T5 for `prompt` (the text of its first mix entry)."""
    text = TextCondition.of(prompt).texts[0][0]
    return tokenizer([text], return_tensors="pt", padding=True)["input_ids"]


def rtf_transformers_musicgen(
    model: MusicgenForConditionalGeneration, input_ids: Tensor, seconds: float, threads: int, seed: int = 0
) -> Run:
    """Compute seconds per audio second of `model.generate` (text encode, sampling with CFG, audio decode).

    Runs `frames + K - 1` new tokens, which the delay pattern turns into `frames = seconds × frame rate` whole
    frames, so both sides make the same audio length.
    """
    torch.set_num_threads(threads)
    audio_cfg: Any = model.config.audio_encoder  # EncodecConfig
    K = model.decoder.num_codebooks
    frames = max(1, round(seconds * audio_cfg.frame_rate))
    kwargs: dict[str, Any] = dict(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        do_sample=True,
        top_k=TOP_K,
        guidance_scale=CFG_SCALE,
    )
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        model.generate(**kwargs, max_new_tokens=2 * K - 1)  # warm-up: K whole frames
        t0 = time.perf_counter()
        audio = model.generate(**kwargs, max_new_tokens=frames + K - 1)  # (1, 1, frames * hop)
        elapsed = time.perf_counter() - t0
    wav = audio[0, 0].float()  # (samples,)
    return Run(elapsed / (wav.shape[0] / audio_cfg.sampling_rate), wav, audio_cfg.sampling_rate)


def rtf_ours_musicgen(
    parts: MusicgenParts,
    seconds: float,
    threads: int,
    seed: int = 0,
    prompt: Prompt = BENCH_PROMPT,
    tokenizer: Tokenizer | None = None,
) -> Run:
    """Compute seconds per audio second of `musicgen_source(parts, ...).next_chunk()`, codec decode included.

    Like `concert.bench.engine.rtf_embedded`: one warm-up chunk (allocations, T5, the first prefill), then chunks of
    0.5 s until `seconds` of audio came out. tokenizer: None takes `text_tokenizer(parts)`.
    """
    if parts.audio_encoder is None:
        raise ValueError("these MusicGen parts have no audio encoder (EnCodec) to decode with")
    torch.set_num_threads(threads)
    codec_config: Any = parts.audio_encoder.config  # EncodecConfig
    rate = int(codec_config.frame_rate)  # frames per second
    config = ContinuationConfig(chunk_frames=max(1, round(CHUNK_S * rate)), top_k=TOP_K, cfg_scale=CFG_SCALE, seed=seed)
    src = musicgen_source(parts, prompt, config, tokenizer=tokenizer)
    try:
        rtf, pcm = time_chunks(src, seconds)
    finally:
        src.close()
    return Run(rtf, torch.cat([torch.from_numpy(p) for p in pcm]), src.sample_rate)


def _median(runs: list[Run]) -> float:
    return statistics.median(r.rtf for r in runs)


def bench_musicgen(
    seconds: float = 2.0,
    threads: int = 2,
    *,
    seed: int = 0,
    repeats: int = 3,
    transformers_bf16: bool = True,
    model: MusicgenForConditionalGeneration | None = None,
) -> dict[str, float]:
    """RTFs of our loop (float32, bfloat16 and int8-weight decoder) and of `generate` (float32, and bfloat16 if
    asked).

    speedup_vs_transformers compares like with like (both float32, transformers' default);
    speedup_vs_transformers_bf16_ours / _int8_ours are ours in bfloat16 / int8 weights against transformers in
    float32, and
    speedup_vs_transformers_bf16 both in bfloat16. With repeats > 1 the sides alternate and each key is the
    median. `model` defaults to `musicgen_small_random(seed)` (≈ 20-30 s to build on 2 cores).
    """
    model = musicgen_small_random(seed) if model is None else model
    ours32, ours16 = load_musicgen(model, dtype=torch.float32), load_musicgen(model, dtype=torch.bfloat16)
    ours8 = load_musicgen(model, dtype=torch.float32)
    with_precision(ours8.lm, DEFAULT_PRECISION)  # the musicgen backend's default precision
    tokenizer = text_tokenizer(ours32)
    ids = prompt_ids(tokenizer)  # (1, S) the same text ids for both sides
    sides: dict[str, Callable[[], Run]] = {
        "rtf_ours_musicgen": lambda: rtf_ours_musicgen(ours32, seconds, threads, seed, tokenizer=tokenizer),
        "rtf_ours_musicgen_bf16": lambda: rtf_ours_musicgen(ours16, seconds, threads, seed, tokenizer=tokenizer),
        "rtf_ours_musicgen_int8": lambda: rtf_ours_musicgen(ours8, seconds, threads, seed, tokenizer=tokenizer),
        "rtf_transformers_musicgen": lambda: rtf_transformers_musicgen(model, ids, seconds, threads, seed),
    }
    if transformers_bf16:  # a copy: the parts share the model's text encoder and codec, which stay float32
        model16: Any = copy.deepcopy(model)
        model16.to(torch.bfloat16)
        sides["rtf_transformers_musicgen_bf16"] = lambda: rtf_transformers_musicgen(
            model16, ids, seconds, threads, seed
        )
    runs: dict[str, list[Run]] = {key: [] for key in sides}
    for _ in range(repeats):
        for key, run in sides.items():
            runs[key].append(run())
    result = {"musicgen_seconds": float(seconds)} | {key: _median(r) for key, r in runs.items()}
    theirs32, ours16_rtf = result["rtf_transformers_musicgen"], result["rtf_ours_musicgen_bf16"]
    result["speedup_vs_transformers"] = theirs32 / result["rtf_ours_musicgen"]  # float32 vs float32
    result["speedup_vs_transformers_bf16_ours"] = theirs32 / ours16_rtf  # ours bfloat16 vs theirs float32
    result["speedup_vs_transformers_int8_ours"] = theirs32 / result["rtf_ours_musicgen_int8"]  # ours int8 weights
    if transformers_bf16:
        result["speedup_vs_transformers_bf16"] = result["rtf_transformers_musicgen_bf16"] / ours16_rtf
    return result
