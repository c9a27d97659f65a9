"""MusicGen's delay pattern: codebook k is shifted right by k frames, so one model step predicts K tokens at once.

A codec frame t holds K tokens ``codes[:, :, t]``; codebook k refines what codebooks 0..k-1 left out. In the
delayed layout, step s holds codebook k of frame ``s - k``, so when the model predicts step s it has already seen
the coarser codebooks of the same frame (steps before s). With K = 4 and T = 3 frames (``a b c`` are frames,
``·`` is the ``special`` id)::

    step s      0  1  2  3  4  5
    k = 0       a0 b0 c0 ·  ·  ·
    k = 1       ·  a1 b1 c1 ·  ·
    k = 2       ·  ·  a2 b2 c2 ·
    k = 3       ·  ·  ·  a3 b3 c3

T frames take T + K - 1 steps. Frame t is complete after step t + K - 1 (its last codebook lands there), so after
``steps`` steps the first ``complete_frames(steps, K)`` frames are whole. While generating endlessly only the
leading gap exists: at step s < K - 1 the codebooks k > s are padding (``delayed_step_mask``).

Pure functions on LongTensors, after audiocraft's ``modules/codebooks_patterns.py``; ``revert_delay_pattern`` undoes
``build_delay_pattern`` exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_codes(name: str, tensor: Tensor) -> tuple[int, int, int]:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != torch.long:
        raise TypeError(f"{name} must be a LongTensor (torch.int64), got dtype {tensor.dtype}")
    if tensor.dim() != 3:
        raise ValueError(f"{name} must have shape (B, K, T), got {tuple(tensor.shape)}")
    batch, num_codebooks, length = tensor.shape
    if num_codebooks < 1:
        raise ValueError(f"{name} needs at least one codebook, got K = {num_codebooks} in shape {tuple(tensor.shape)}")
    return batch, num_codebooks, length


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def delay_pattern_mask(num_codebooks: int, num_frames: int) -> Tensor:
    """Which positions of a delayed sequence of ``num_frames`` frames hold real tokens.

    Returns a bool tensor of shape (K, T + K - 1): True at (k, s) when ``k <= s < T + k``, False on the padding.
    """
    _check_count("num_codebooks", num_codebooks, 1)
    _check_count("num_frames", num_frames, 0)
    steps = torch.arange(num_frames + num_codebooks - 1)  # (S,)
    k = torch.arange(num_codebooks)[:, None]  # (K, 1)
    return (steps >= k) & (steps < num_frames + k)  # (K, S)


def build_delay_pattern(codes: Tensor, special: int) -> Tensor:
    """Delay codebook k by k frames: (B, K, T) codes -> (B, K, T + K - 1), gaps filled with ``special``.

    ``special`` must be an id outside the codebook (e.g. the codebook size); a ``special`` that also occurs in
    ``codes`` is refused because the layout could not be told apart from real tokens.
    """
    batch, num_codebooks, length = _check_codes("codes", codes)
    if isinstance(special, bool) or not isinstance(special, int):
        raise TypeError(f"special must be an int token id, got {special!r}")
    if length < 1:
        raise ValueError(f"codes must hold at least one frame, got T = {length} in shape {tuple(codes.shape)}")
    if bool((codes == special).any()):
        raise ValueError(f"special id {special} also occurs in codes; pick an id outside the codebook")
    out = codes.new_full((batch, num_codebooks, length + num_codebooks - 1), special)  # (B, K, S)
    for k in range(num_codebooks):
        out[:, k, k : k + length] = codes[:, k]  # (B, T)
    return out


def revert_delay_pattern(seq: Tensor) -> Tensor:
    """Undo ``build_delay_pattern``: (B, K, S) delayed tokens -> (B, K, S - K + 1) frames; padding is dropped.

    Needs S >= K (at least one whole frame). On a prefix of a longer delayed sequence this returns exactly the
    frames that are complete so far, ``complete_frames(S, K)`` of them.
    """
    _, num_codebooks, steps = _check_codes("seq", seq)
    if steps < num_codebooks:
        raise ValueError(
            f"a delayed sequence with K = {num_codebooks} codebooks needs S >= K steps to hold a whole frame, "
            f"got S = {steps}"
        )
    length = steps - num_codebooks + 1
    return torch.stack([seq[:, k, k : k + length] for k in range(num_codebooks)], dim=1)  # (B, K, T)


def complete_frames(steps: int, num_codebooks: int) -> int:
    """How many original frames are whole after ``steps`` delayed steps: ``max(0, steps - K + 1)``."""
    _check_count("steps", steps, 0)
    _check_count("num_codebooks", num_codebooks, 1)
    return max(0, steps - num_codebooks + 1)


def delayed_step_mask(step: int, num_codebooks: int, num_frames: int | None = None) -> Tensor:
    """Which codebooks at delayed ``step`` are real tokens (True) rather than padding (False); shape (K,).

    Without ``num_frames`` (endless generation) only the leading gap exists: codebook k is real once ``step >= k``,
    so all K are real from step K - 1 on. With ``num_frames`` = T the trailing gap counts too (``step < T + k``).
    """
    _check_count("step", step, 0)
    _check_count("num_codebooks", num_codebooks, 1)
    k = torch.arange(num_codebooks)  # (K,)
    mask = k <= step  # (K,)
    if num_frames is not None:
        _check_count("num_frames", num_frames, 0)
        mask &= step < num_frames + k
    return mask
