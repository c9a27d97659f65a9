"""`concert train lm`: the embedded TokenLM on the tokenised corpus, conditioned as the live source feeds it.

A training sequence is `seq_len` delayed steps (MusicGen's delay pattern, `engine.lm.patterns`): either the start of
a piece behind the BOS frame (the stream's first steps, with the pattern's leading padding), or a crop from the
middle (what the sliding window re-primes from). A share `splice_prob` of the middle crops open with bars of
another piece and cut to this one on a bar line: the context then says one style and the conditioning, from the
cut on, another — the situation of every crowd switch. In an unspliced crop the context alone predicts the style,
so without splices the model learns to ignore its prompt (held-out CE with and without conditioning was equal,
4.94, after 1,028 steps). Each input step carries the conditioning of its frame — genre
weights and `engine.generate.conditioning.frame_controls` (prompt features + bar-clock phase) — exactly the rows
`engine.generate.continuation.StyleConditioner` builds live; with probability `uncond_prob` a sequence gets the null row
instead, so classifier-free guidance has an unconditional model to push away from. The loss is cross-entropy
per codebook over real (non-padding) targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.generate.conditioning import frame_controls
from engine.lm.model import LMConfig, TokenLM
from engine.train.tokens import TokenPiece, TokenSet


@dataclass(frozen=True)
class LMTrainConfig:
    batch: int = 8  # sequences per step
    seq_len: int = 500  # delayed steps per sequence (the live window: 10 s at 50 Hz)
    start_prob: float = 0.1  # share of sequences taken from a piece's start, behind the BOS frame
    uncond_prob: float = 0.15  # share of sequences trained with the null condition (for guidance)
    splice_prob: float = 0.3  # share of middle crops that open with another piece, cut on a bar line
    splice_lead: tuple[float, float] = (0.15, 0.5)  # share of the sequence the other piece fills, at least .. most
    lr: float = 6e-4  # AdamW peak learning rate
    warmup_steps: int = 200  # linear warm-up, steps
    weight_decay: float = 0.1  # on matrices only
    clip_grad: float = 1.0  # gradient norm clip
    holdout_batches: int = 4  # fixed held-out batches scored at each evaluation
    seed: int = 0
    device: str = "cpu"  # "cuda" where a GPU is at hand


class SequenceSampler:
    """Draws training sequences (tokens, targets, per-step conditioning) from token pieces."""

    def __init__(self, pieces: list[TokenPiece], config: LMTrainConfig, card: int, num_codebooks: int) -> None:
        long_enough = [p for p in pieces if p.codes.shape[1] >= config.seq_len + num_codebooks + 2]
        if not long_enough:
            raise ValueError(f"no piece is longer than seq_len={config.seq_len} + {num_codebooks + 2} frames")
        self.pieces = long_enough
        self.config = config
        self.special = card
        self.K = num_codebooks

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, Tensor]:
        """tokens (B, K, T), targets (B, K, T) with -100 at padding, weights (B, T, G), controls (B, T, C),
        keep (B,) 1 = conditioned, 0 = null row."""
        T, K = self.config.seq_len, self.K
        out_tokens, out_targets, out_w, out_c = [], [], [], []
        for _ in range(batch):
            piece = self.pieces[int(rng.integers(len(self.pieces)))]
            frames = piece.codes.shape[1]
            if rng.random() < self.config.start_prob:
                steps = np.arange(-1, T)  # BOS, then delayed steps 0 .. T - 1
            elif rng.random() < self.config.splice_prob and (spliced := self._splice(rng, piece)) is not None:
                piece, frames = spliced, spliced.codes.shape[1]
                steps = np.arange(K - 1, K + T)  # (T + 1,) from the first step with every codebook real
            else:
                first = int(rng.integers(K - 1, frames - T - 1))
                steps = np.arange(first, first + T + 1)  # (T + 1,) delayed step indices
            seq = self._delayed(piece.codes, steps)  # (K, T + 1)
            frame = np.clip(steps[:-1], 0, frames - 1)  # (T,) the frame each input step is conditioned on
            out_tokens.append(seq[:, :-1])
            target = seq[:, 1:].copy()
            target[target == self.special] = -100  # padding is never predicted
            out_targets.append(target)
            out_w.append(piece.weights[frame])
            out_c.append(frame_controls(piece.controls[frame], piece.bar[frame]))
        keep = (rng.random(batch) >= self.config.uncond_prob).astype(np.float32)
        return {
            "tokens": torch.from_numpy(np.stack(out_tokens)),  # (B, K, T)
            "targets": torch.from_numpy(np.stack(out_targets)),  # (B, K, T)
            "weights": torch.from_numpy(np.stack(out_w)),  # (B, T, G)
            "controls": torch.from_numpy(np.stack(out_c)),  # (B, T, C)
            "keep": torch.from_numpy(keep),  # (B,)
        }

    def _splice(self, rng: np.random.Generator, piece: TokenPiece) -> TokenPiece | None:
        """Bars of another piece, then `piece` from one of its bar lines: the frames of one spliced sequence.

        The cut lies `lead` frames in, on a bar line of both pieces, so the bar clock's phase runs on unbroken
        (the conditioning's metronome never jumps). None when no such cut fits (a piece without enough bars).
        """
        T, K = self.config.seq_len, self.K
        need = T + K + 1  # frames a middle crop starting at step K - 1 reads
        low, high = self.config.splice_lead
        lead = K - 1 + int(rng.integers(max(1, round(low * T)), max(2, round(high * T)) + 1))
        other = self.pieces[int(rng.integers(len(self.pieces)))]
        ends = _bar_lines(other.bar)
        ends = ends[ends >= lead]  # the other piece's bar lines with `lead` frames before them
        starts = _bar_lines(piece.bar)
        starts = starts[starts + need - lead <= piece.codes.shape[1]]  # bar lines of piece with enough after
        if other is piece or len(ends) == 0 or len(starts) == 0:
            return None
        end, start = int(ends[rng.integers(len(ends))]), int(starts[rng.integers(len(starts))])
        a, b = slice(end - lead, end), slice(start, start + need - lead)
        bar = np.concatenate(
            [other.bar[a], piece.bar[b] - np.floor(piece.bar[start]) + np.floor(other.bar[end - 1]) + 1]
        )
        return TokenPiece(
            codes=np.concatenate([other.codes[:, a], piece.codes[:, b]], axis=1),  # (K, need)
            weights=np.concatenate([other.weights[a], piece.weights[b]]),  # (need, G)
            controls=np.concatenate([other.controls[a], piece.controls[b]]),  # (need, C)
            bar=bar.astype(np.float32),  # (need,) the other piece's clock, counting on across the cut
        )

    def _delayed(self, codes: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Delayed tokens at `steps` (-1 = BOS): codebook k of step s is frame s - k, or `special` outside."""
        frame = steps[None, :] - np.arange(self.K)[:, None]  # (K, S)
        valid = (frame >= 0) & (frame < codes.shape[1]) & (steps[None, :] >= 0)
        picked = codes[np.arange(self.K)[:, None], np.clip(frame, 0, codes.shape[1] - 1)]  # (K, S)
        return np.where(valid, picked, self.special).astype(np.int64)


def _bar_lines(bar: np.ndarray) -> np.ndarray:
    """Frames on which a new bar begins (the bar clock's integer part steps up)."""
    return np.flatnonzero(np.diff(np.floor(bar)) > 0) + 1


def sequence_loss(lm: TokenLM, batch: dict[str, Tensor], per_codebook: bool = False) -> Tensor:
    """Mean cross-entropy over real targets: () or, with per_codebook, (K,)."""
    tokens, targets = batch["tokens"], batch["targets"]
    B, K, T = tokens.shape
    w = batch["weights"].reshape(B * T, -1)  # (B * T, G)
    c = batch["controls"].reshape(B * T, -1)  # (B * T, C)
    cond = lm.condition(w, c).view(B, T, -1) * batch["keep"].view(B, 1, 1)  # (B, T, D); 0 = the null row
    logits = lm(tokens, cond)  # (B, K, T, card)
    if not per_codebook:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    losses = [
        F.cross_entropy(logits[:, k].reshape(-1, logits.shape[-1]), targets[:, k].reshape(-1), ignore_index=-100)
        for k in range(K)
    ]
    return torch.stack(losses)  # (K,)


class LMJob:
    """The token model's `engine.train.loop.Job`."""

    def __init__(
        self, tokens: TokenSet, lm_config: LMConfig, config: LMTrainConfig, out: Path, init: TokenLM | None = None
    ) -> None:
        self.config = config
        self.out = out
        self.device = torch.device(config.device)
        lm = TokenLM(lm_config, seed=config.seed) if init is None else init
        self.lm = lm.to(self.device).train()
        decay = [p for n, p in self.lm.named_parameters() if p.dim() >= 2]
        other = [p for n, p in self.lm.named_parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}]
        self.optim = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))
        K, card = lm_config.num_codebooks, lm_config.card
        self.train = SequenceSampler(tokens.pieces["train"], config, card, K)
        self.rng = np.random.default_rng(config.seed)
        held = SequenceSampler(tokens.pieces["holdout"], config, card, K)
        fixed = np.random.default_rng(config.seed + 1)
        self.holdout = [held.sample(fixed, config.batch) for _ in range(config.holdout_batches)]
        self.first_step: int | None = None  # the step this job first trained (warm-up counts from it)

    def _to(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to(self.device) for k, v in batch.items()}

    def step(self, step: int) -> dict[str, float]:
        cfg = self.config
        if self.first_step is None:  # a run from shipped weights starts at their step count, with a fresh optimizer
            self.first_step = step
        lr = cfg.lr * min(1.0, (step - self.first_step + 1) / cfg.warmup_steps)
        for group in self.optim.param_groups:
            group["lr"] = lr
        self.lm.train()
        batch = self._to(self.train.sample(self.rng, cfg.batch))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = sequence_loss(self.lm, batch)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.lm.parameters(), cfg.clip_grad)
        self.optim.step()
        return {"loss": float(loss.detach()), "lr": lr}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.lm.eval()
        cond, uncond = [], []
        for batch in self.holdout:
            batch = self._to(batch)
            cond.append(sequence_loss(self.lm, {**batch, "keep": torch.ones_like(batch["keep"])}, per_codebook=True))
            uncond.append(sequence_loss(self.lm, {**batch, "keep": torch.zeros_like(batch["keep"])}))
        per_k = torch.stack(cond).mean(0)  # (K,)
        out = {f"holdout_ce_k{k}": float(v) for k, v in enumerate(per_k)}
        out["holdout_ce"] = float(per_k.mean())
        out["holdout_ce_uncond"] = float(torch.stack(uncond).mean())
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.lm.state_dict(),
            "optim": self.optim.state_dict(),
            "data_rng": self.rng.bit_generator.state,
            "first_step": self.first_step,
            "config": asdict(self.config),
            "lm_config": asdict(self.lm.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lm.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.rng.bit_generator.state = state["data_rng"]
        self.first_step = state.get("first_step", 0)

    def snapshot(self, step: int, hours: float) -> None:
        from engine.embedded.weights import save_lm

        save_lm(self.lm, self.out, dtype=torch.float32, extra={"step": str(step), "hours": f"{hours:.3f}"})
