"""The token LM's linear layer, with fast paths for streaming steps on CPU.

A streaming step pushes a few rows (the guidance rows, one frame each) through every linear, so each linear is a
matrix-vector product bound by reading its weight. On a 2-core AVX2 machine `F.linear` (`x @ weight.T`) reads
float32 weights at ≈ 6-10 GB/s, well below the memory's ≈ 30 GB/s, and bfloat16 weights are no faster (no native
bf16 arithmetic). Under `torch.no_grad` / `inference_mode`, `StepLinear` therefore takes, for 1..64 rows:

- **int8** (after `quantize_int8()`): weight-only int8 with one float scale per output row, through
  `torch._weight_int8pack_mm` with bfloat16 activations — a quarter of float32's bytes, about 3x faster than
  bfloat16 `F.linear` for the embedded model's shapes. Symmetric rounding: |error| ≤ scale / 2 per weight.
- **float32, large weights**: oneDNN's packed inner product (`mkldnn._linear_pointwise` on a weight reordered
  once and cached), ≈ 1.1-1.5x the weight-major `weight @ x.T`, itself ≈ 2x `F.linear`; the weight-major product
  when torch has no oneDNN. Same weights and sums up to float32 rounding; the packed copy costs the weight's
  size again in memory.

More rows in half precision (a prefill of the window) run in float32, ≈ 10x faster there than bf16's
`F.linear`. Training (grad enabled), other devices and dtypes take `F.linear`, so results and autograd are
those of `nn.Linear`. The state dict is always the float weight: quantizing adds no keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STEP_MAX_ROWS = 64  # up to this many rows (a streaming step: B rows, T = 1) the fast paths run
PACK_MIN_WEIGHTS = 1 << 20  # float32 weights of at least this many elements (4 MiB: past the L2 cache) are packed
HALF = (torch.bfloat16, torch.float16)
INT8_ALIGN = 8  # torch's int8 kernel needs in_features to be a multiple of this (it misreads other widths)


def quantize_rows_int8(weight: Tensor) -> tuple[Tensor, Tensor]:
    """weight (out, in) float -> (int8 (out, in), scales (out,) float32) with weight ≈ int8 * scales[:, None].

    Symmetric per output row: scale = max |row| / 127 (1 for an all-zero row), values rounded to nearest.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be (out, in), got {tuple(weight.shape)}")
    w = weight.detach().float()  # (out, in)
    scales = w.abs().amax(dim=1) / 127.0  # (out,)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))  # (out,)
    q = torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8)  # (out, in)
    return q, scales


def onednn_available() -> bool:
    return bool(torch.backends.mkldnn.is_available())


class StepLinear(nn.Linear):
    """`nn.Linear` with the streaming fast paths of the module docstring."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs: object) -> None:
        super().__init__(in_features, out_features, bias=bias, **kwargs)  # type: ignore[arg-type]
        self.int8: Tensor | None = None  # (out, in) int8 weight after quantize_int8()
        self.int8_scales: Tensor | None = None  # (out,) float32 scales
        self._scales_cast: Tensor | None = None  # int8_scales in the activations' dtype
        self._packed: Tensor | None = None  # oneDNN-reordered float32 weight
        self._packed_key: tuple[int, int] | None = None  # (data_ptr, version) of the weight it was made from

    def __getstate__(self) -> dict[str, object]:
        """Copies and pickles leave the oneDNN cache behind (it has no storage to copy); it is rebuilt on use."""
        state = self.__dict__.copy()
        state["_packed"] = state["_packed_key"] = None
        return state

    def quantize_int8(self) -> None:
        """Keep an int8 copy of the current weight for inference; the float weight stays for training and saving."""
        self.int8, self.int8_scales = quantize_rows_int8(self.weight)
        self._scales_cast = None

    def dequantize(self) -> None:
        """Drop the int8 copy: inference goes back to the float weight."""
        self.int8 = self.int8_scales = self._scales_cast = None

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or torch.is_grad_enabled():
            return F.linear(x, self.weight, self.bias)
        rows = x.numel() // self.in_features
        if rows <= STEP_MAX_ROWS:
            if self.int8 is not None and self.in_features % INT8_ALIGN == 0:
                return self._int8(x, rows)
            weight = self.weight
            if weight.dtype == torch.float32 and x.dtype == torch.float32 and weight.numel() >= PACK_MIN_WEIGHTS:
                return self._float32(x, rows)
        elif x.dtype in HALF:  # many rows (a prefill) in half precision: ≈ 10x faster as float32 without native bf16
            bias = None if self.bias is None else self.bias.float()
            return F.linear(x.float(), self.weight.float(), bias).to(x.dtype)
        return F.linear(x, self.weight, self.bias)

    def _int8(self, x: Tensor, rows: int) -> Tensor:
        assert self.int8 is not None and self.int8_scales is not None  # checked by forward
        act = torch.bfloat16 if x.dtype == torch.float32 else x.dtype  # the kernel is slow on float32 activations
        scales = self._scales_cast
        if scales is None or scales.dtype != act:
            scales = self._scales_cast = self.int8_scales.to(act)  # (out,)
        flat = x.reshape(rows, self.in_features).to(act).contiguous()  # (rows, in)
        y = torch.ops.aten._weight_int8pack_mm(flat, self.int8, scales)  # (rows, out)
        if self.bias is not None:
            y = y + self.bias.to(act)
        return y.to(x.dtype).view(*x.shape[:-1], self.out_features)  # (..., out)

    def _float32(self, x: Tensor, rows: int) -> Tensor:
        flat = x.reshape(rows, self.in_features)  # (rows, in)
        if onednn_available():
            y = torch.ops.mkldnn._linear_pointwise(flat.contiguous(), self._packed_weight(), self.bias, "none", [], "")
        else:  # weight-major: MKL streams the weight about 2x faster this way than as x @ weight.T
            y = (self.weight @ flat.t()).t().contiguous()  # (rows, out)
            if self.bias is not None:
                y = y + self.bias
        return y.view(*x.shape[:-1], self.out_features)  # (..., out)

    def _packed_weight(self) -> Tensor:
        weight = self.weight
        key = (weight.data_ptr(), weight._version)
        if self._packed is None or self._packed_key != key:
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
            self._packed_key = key
        return self._packed
