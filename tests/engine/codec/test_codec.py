from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.codec.model import Codec, CodecConfig, CodecError, ReceptiveField
from engine.codec.stream import RecurrentStreamingDecoder

STREAM_FRAMES = 60  # frames decoded whole and in chunks by the streaming tests
STREAM_TOLERANCE = 1e-4  # max |stream - whole| relative to the peak; measured ≈ 2e-6 (float32 rounding)
LSTM_TOLERANCE = 1e-3  # the same for a windowed decoder, whose LSTM restarts at each window; measured ≈ 2e-6

FIFTY_HZ = CodecConfig()  # the embedded default: 16 filters, no LSTM, hop 480
SEVENTY_FIVE_HZ = CodecConfig(upsampling_ratios=(8, 5, 4, 2), num_codebooks=2, codebook_size=256)
WITH_LSTM = CodecConfig(upsampling_ratios=(8, 5, 4, 2), num_lstm_layers=1, num_filters=8)
NON_CAUSAL = CodecConfig(use_causal_conv=False, num_filters=8)


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.random(FIFTY_HZ, seed=0)


@pytest.fixture(scope="module")
def codec_75hz() -> Codec:
    return Codec.random(SEVENTY_FIVE_HZ, seed=0)


@pytest.fixture(scope="module")
def saved(codec: Codec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("codec")
    codec.save(path)
    return path


def _random_codes(codec: Codec, frames: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, codec.codebook_size, (batch, codec.num_codebooks, frames), generator=generator)


def _stream(codec: Codec, codes: torch.Tensor, chunk: int, left_context_frames: int | None = None) -> torch.Tensor:
    decoder = codec.streaming_decoder(left_context_frames)
    pieces = [decoder.push(codes[..., i : i + chunk]) for i in range(0, codes.shape[-1], chunk)]
    return torch.cat([*pieces, decoder.flush()], dim=-1)  # (B, F * hop)


def _relative_diff(stream: torch.Tensor, whole: torch.Tensor) -> float:
    assert stream.shape == whole.shape
    return float((stream - whole).abs().max() / whole.abs().max())


def _copy_checkpoint(saved: Path, target: Path, **changes: object) -> Path:
    shutil.copytree(saved, target)
    config = json.loads((target / "config.json").read_text())
    config.update(changes)
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_default_properties_come_from_the_model(codec: Codec) -> None:
    assert (codec.sample_rate, codec.frame_rate, codec.hop_length) == (24000, 50, 480)
    assert (codec.num_codebooks, codec.codebook_size) == (8, 256)
    assert codec.receptive_field == ReceptiveField(left_frames=8, right_frames=0, recurrent=False)
    assert codec.default_left_context_frames == 8
    for side in (codec.model.encoder, codec.model.decoder):
        assert 0.9e6 < sum(p.numel() for p in side.parameters()) < 1.0e6


def test_other_config_is_not_hard_coded(codec_75hz: Codec) -> None:
    assert (codec_75hz.sample_rate, codec_75hz.frame_rate, codec_75hz.hop_length) == (24000, 75, 320)
    assert (codec_75hz.num_codebooks, codec_75hz.codebook_size) == (2, 256)
    codes = codec_75hz.encode(torch.zeros(1, 24000))
    assert codes.shape == (1, 2, 75)


@pytest.mark.parametrize("samples", [1, 479, 480, 481, 4800])
def test_encode_decode_shapes(codec: Codec, samples: int) -> None:
    wav = 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(samples))
    codes = codec.encode(wav)
    frames = math.ceil(samples / codec.hop_length)
    assert codes.shape == (2, codec.num_codebooks, frames)
    assert codes.dtype == torch.long
    audio = codec.decode(codes)
    assert audio.shape == (2, frames * codec.hop_length)
    assert audio.dtype == torch.float32
    assert bool(torch.isfinite(audio).all())


def test_codes_lie_in_the_codebook_and_vary(codec_75hz: Codec) -> None:
    wav = 0.1 * torch.randn(3, 24000, generator=torch.Generator().manual_seed(5))
    codes = codec_75hz.encode(wav)
    assert 0 <= int(codes.min()) and int(codes.max()) < codec_75hz.codebook_size
    for k in range(codec_75hz.num_codebooks):
        assert codes[:, k].unique().numel() > 10  # random codebooks spread like the latents, not one code for all


def test_different_codes_decode_to_different_audio(codec: Codec) -> None:
    codes = _random_codes(codec, 10, batch=1)
    other = codes.clone()
    other[0, 3, 5] = (other[0, 3, 5] + 1) % codec.codebook_size  # one token of the finest codebook
    assert not torch.equal(codec.decode(codes), codec.decode(other))


def test_random_init_is_deterministic_by_seed(codec: Codec) -> None:
    rng_before = torch.random.get_rng_state()
    again = Codec.random(FIFTY_HZ, seed=0)
    other = Codec.random(FIFTY_HZ, seed=1)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global RNG is left alone
    mine, same, different = codec.model.state_dict(), again.model.state_dict(), other.model.state_dict()
    assert all(torch.equal(mine[name], same[name]) for name in mine)
    assert not all(torch.equal(mine[name], different[name]) for name in mine)
    codes = _random_codes(codec, 5)
    assert torch.equal(codec.decode(codes), again.decode(codes))


@pytest.mark.parametrize("chunk", [1, 3, 7, 25])
def test_streaming_equals_whole_decode(codec: Codec, chunk: int) -> None:
    codes = _random_codes(codec, STREAM_FRAMES)
    assert _relative_diff(_stream(codec, codes, chunk), codec.decode(codes)) < STREAM_TOLERANCE


@pytest.mark.parametrize("config", [SEVENTY_FIVE_HZ, NON_CAUSAL], ids=["75hz", "non-causal"])
def test_streaming_equals_whole_decode_for_other_configs(config: CodecConfig) -> None:
    codec = Codec.random(config, seed=2)
    codes = _random_codes(codec, STREAM_FRAMES)
    whole = codec.decode(codes)
    for chunk in (1, 7):
        assert _relative_diff(_stream(codec, codes, chunk), whole) < STREAM_TOLERANCE


def test_non_causal_decoder_holds_back_its_lookahead() -> None:
    codec = Codec.random(NON_CAUSAL, seed=2)
    right = codec.receptive_field.right_frames
    assert right > 0
    decoder = codec.streaming_decoder()
    audio = decoder.push(_random_codes(codec, 20))
    assert audio.shape[-1] == (20 - right) * codec.hop_length
    assert decoder.flush().shape[-1] == right * codec.hop_length


def test_less_left_context_than_the_receptive_field_is_not_exact(codec: Codec) -> None:
    codes = _random_codes(codec, STREAM_FRAMES)
    whole = codec.decode(codes)
    exact = _relative_diff(_stream(codec, codes, 3), whole)  # float32 rounding only
    short = _relative_diff(_stream(codec, codes, 3, codec.default_left_context_frames - 1), whole)
    assert short > 10 * exact


LSTM_CODECS = {"causal": WITH_LSTM, "non_causal": replace(WITH_LSTM, use_causal_conv=False, num_lstm_layers=2)}


@pytest.mark.parametrize("kind", sorted(LSTM_CODECS))
def test_an_lstm_decoder_streams_exactly_by_carrying_its_state(kind: str) -> None:
    codec = Codec.random(LSTM_CODECS[kind], seed=3)
    assert codec.receptive_field.recurrent
    assert isinstance(codec.streaming_decoder(), RecurrentStreamingDecoder)
    codes = _random_codes(codec, 120)
    whole = codec.decode(codes)
    for chunk in (1, 7, 25):
        assert _relative_diff(_stream(codec, codes, chunk), whole) < STREAM_TOLERANCE
    # the windowed decoder instead restarts the LSTM at every window: close with its warm-up, far without
    warm = codec.default_left_context_frames
    assert warm > codec.receptive_field.left_frames
    assert _relative_diff(_stream(codec, codes, 25, left_context_frames=warm), whole) < LSTM_TOLERANCE
    assert _relative_diff(_stream(codec, codes, 25, left_context_frames=0), whole) > 100 * LSTM_TOLERANCE


@pytest.mark.parametrize("frames", [1, 2, 3, 5, 8])
def test_a_short_lstm_stream_flushes_to_the_whole_decode(frames: int) -> None:
    codec = Codec.random(LSTM_CODECS["non_causal"], seed=3)
    codes = _random_codes(codec, frames)
    decoder = codec.streaming_decoder()
    audio = torch.cat([decoder.push(codes), decoder.flush()], dim=-1)
    assert audio.shape == (2, frames * codec.hop_length)
    assert _relative_diff(audio, codec.decode(codes)) < STREAM_TOLERANCE
    assert decoder.frames_received == decoder.frames_emitted == frames


def test_the_lstm_decoder_holds_back_only_the_first_convolution_s_lookahead() -> None:
    codec = Codec.random(LSTM_CODECS["non_causal"], seed=3)
    decoder = codec.streaming_decoder()
    audio = decoder.push(_random_codes(codec, 30))
    right = codec.receptive_field.right_frames
    assert audio.shape[-1] == (30 - right) * codec.hop_length and decoder.frames_emitted == 30 - right
    assert decoder.flush().shape[-1] == right * codec.hop_length


def test_the_lstm_decoder_refuses_bad_input() -> None:
    codec = Codec.random(WITH_LSTM, seed=3)
    decoder = codec.streaming_decoder()
    decoder.push(_random_codes(codec, 3, batch=2))
    with pytest.raises(ValueError, match="batch size changed from 2 to 1"):
        decoder.push(_random_codes(codec, 3, batch=1))
    with pytest.raises(ValueError, match="outside the codebook"):
        decoder.push(torch.full((2, codec.num_codebooks, 1), codec.codebook_size))
    decoder.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        decoder.push(_random_codes(codec, 1))


def test_first_frames_wait_for_the_frames_reflect_padding_mirrors(codec: Codec) -> None:
    codes = _random_codes(codec, 10)
    needed = codec.frames_needed(0)  # the first conv mirrors frames 1..6 in front of frame 0
    assert needed > 1
    decoder = codec.streaming_decoder()
    for i in range(needed - 1):
        assert decoder.push(codes[..., i : i + 1]).shape == (2, 0)
    assert decoder.push(codes[..., needed - 1 : needed]).shape == (2, needed * codec.hop_length)
    assert decoder.frames_emitted == needed


def test_flush_decodes_a_short_stream_whole(codec: Codec) -> None:
    codes = _random_codes(codec, 2)
    decoder = codec.streaming_decoder()
    assert decoder.push(codes).shape == (2, 0)
    assert torch.allclose(decoder.flush(), codec.decode(codes))


def test_streaming_decoder_errors(codec: Codec) -> None:
    decoder = codec.streaming_decoder()
    decoder.push(_random_codes(codec, 3, batch=2))
    with pytest.raises(ValueError, match="batch size changed from 2 to 1"):
        decoder.push(_random_codes(codec, 3, batch=1))
    with pytest.raises(ValueError, match=r"\(B, 8, F\)"):
        decoder.push(torch.zeros(2, 3, 1, dtype=torch.long))
    decoder.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        decoder.push(_random_codes(codec, 1))
    with pytest.raises(ValueError, match="left_context_frames must be an int >= 0, got -1"):
        codec.streaming_decoder(-1)


def test_decode_and_encode_reject_bad_input(codec: Codec) -> None:
    with pytest.raises(ValueError, match="code 256 is outside the codebook"):
        codec.decode(torch.full((1, 8, 2), 256))
    with pytest.raises(ValueError, match="code -1 is outside"):
        codec.decode(torch.full((1, 8, 2), -1))
    with pytest.raises(TypeError, match="torch.float32"):
        codec.decode(torch.zeros(1, 8, 2))
    with pytest.raises(ValueError, match=r"\(B, 8, F\).*\(1, 2, 2\)"):
        codec.decode(torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.int64"):
        codec.encode(torch.zeros(1, 480, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\).*\(480,\)"):
        codec.encode(torch.zeros(480))
    with pytest.raises(ValueError, match=r"\(1, 0\)"):
        codec.encode(torch.zeros(1, 0))


def test_save_then_from_pretrained_gives_the_same_codec(codec: Codec, saved: Path) -> None:
    assert {"config.json", "model.safetensors"} <= {p.name for p in saved.iterdir()}
    loaded = Codec.from_pretrained(saved)
    assert (loaded.frame_rate, loaded.num_codebooks, loaded.codebook_size) == (50, 8, 256)
    wav = 0.1 * torch.randn(2, 4800, generator=torch.Generator().manual_seed(9))
    codes = codec.encode(wav)
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))


def test_from_pretrained_can_pick_fewer_codebooks(codec: Codec, saved: Path, tmp_path: Path) -> None:
    path = _copy_checkpoint(saved, tmp_path / "ck", target_bandwidths=[0.8, 3.2])  # 2 or 8 codebooks at 50 Hz
    two = Codec.from_pretrained(path, num_codebooks=2)
    assert two.num_codebooks == 2
    wav = 0.1 * torch.randn(1, 4800, generator=torch.Generator().manual_seed(4))
    assert torch.equal(two.encode(wav), codec.encode(wav)[:, :2])  # residual stages: a prefix of the eight
    with pytest.raises(CodecError, match=r"offers \[2, 8\] codebooks.*not 3"):
        Codec.from_pretrained(path, num_codebooks=3)


def test_from_pretrained_missing_pieces(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(CodecError, match=re.escape(f"{tmp_path / 'nowhere'} is not a directory")):
        Codec.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CodecError, match="empty has no config.json"):
        Codec.from_pretrained(tmp_path / "empty")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(saved / "config.json", bare / "config.json")
    with pytest.raises(CodecError, match="bare has no weights.*model.safetensors"):
        Codec.from_pretrained(bare)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"model_type": "t5"}, "model_type 't5', not an EnCodec codec"),
        ({"audio_channels": 2}, "2-channel codec; concert's codec is mono"),
        ({"normalize": True}, "normalize=True"),
        ({"pad_mode": "circular"}, "pad_mode 'circular' is not supported"),
        ({"num_filters": 8}, "could not load the codec checkpoint .*mismatched"),
        ({"num_lstm_layers": 1}, "does not match its config.json: missing_keys decoder.layers.1.lstm"),
    ],
)
def test_from_pretrained_refuses_unusable_checkpoints(
    saved: Path, tmp_path: Path, changes: dict[str, object], match: str
) -> None:
    path = _copy_checkpoint(saved, tmp_path / "ck", **changes)
    with pytest.raises(CodecError, match=match):
        Codec.from_pretrained(path)


def test_from_pretrained_refuses_broken_json(saved: Path, tmp_path: Path) -> None:
    path = _copy_checkpoint(saved, tmp_path / "ck")
    (path / "config.json").write_text("{not json")
    with pytest.raises(CodecError, match="config.json is not readable JSON"):
        Codec.from_pretrained(path)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"codebook_size": 1000}, "codebook_size must be a power of two, got 1000"),
        ({"sample_rate": 44100}, "sample_rate 44100 Hz is not a whole number of hops of 480"),
        ({"num_codebooks": 0}, "num_codebooks must be an int >= 1, got 0"),
        ({"upsampling_ratios": [8, 6, 5, 2]}, "upsampling_ratios must be a non-empty tuple"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CodecConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_codebooks", [1, 3, 7, 8, 32])
def test_encodec_config_yields_exactly_k_quantizers(num_codebooks: int) -> None:
    for ratios in ((8, 6, 5, 2), (8, 5, 4, 2), (5, 4, 4, 2)):
        config = CodecConfig(num_codebooks=num_codebooks, upsampling_ratios=ratios)
        assert config.to_encodec().num_quantizers == num_codebooks


def test_float_rounding_of_the_bandwidth_does_not_lose_a_codebook() -> None:
    # 31 codebooks of 128 tokens at 75 Hz: 31 * 7 * 75 / 1000 kbps floors back to 30 without the nudge
    config = CodecConfig(
        upsampling_ratios=(8, 5, 4, 2), codebook_size=128, num_codebooks=31, num_filters=2, hidden_size=16
    )
    codec = Codec.random(config, seed=0)
    assert codec.num_codebooks == 31
    assert codec.encode(torch.zeros(1, 320)).shape == (1, 31, 1)
