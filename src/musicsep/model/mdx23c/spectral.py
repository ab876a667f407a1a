"""The spectrogram front and back end of MDX23C: complex STFT as real channels, cut to `dim_f` bins.

The network never sees complex numbers: each audio channel becomes two real channels (real part,
then imaginary part), so a stereo chunk is `[L.re, L.im, R.re, R.im]`, and only the lowest `dim_f`
bins are kept (8k-FFT InstVoc HQ keeps 4096 of 4097: everything but Nyquist). The inverse puts
zeros in the cut bins. Periodic Hann window of `n_fft`, centred frames, as the checkpoints were
trained with. No parameters: nothing of this is in a checkpoint. The STFT runs in fp32 whatever
the autocast, since half-precision FFTs are missing on the CPU and lose accuracy on the GPU.
"""

from __future__ import annotations

import torch
from torch import nn


class RealSpectrogram(nn.Module):
    """`(batch, channels, samples)` audio <-> `(batch, 2 * channels, dim_f, frames)` real spectrogram."""

    def __init__(self, n_fft: int, hop_length: int, dim_f: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.dim_f = dim_f
        # Not persistent: the public checkpoints hold no window, and strict loading must see none.
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels, samples = audio.shape
        with torch.autocast(audio.device.type, enabled=False):
            spec = torch.stft(
                audio.reshape(batch * channels, samples).float(),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window.float(),
                center=True,
                return_complex=True,
            )
        parts = torch.view_as_real(spec).movedim(-1, 1)  # (batch*channels, re/im, bins, frames)
        parts = parts.reshape(batch, channels * 2, parts.shape[-2], parts.shape[-1])
        return parts[:, :, : self.dim_f]

    def inverse(self, spec: torch.Tensor, samples: int) -> torch.Tensor:
        """`(..., 2 * channels, dim_f, frames)` back to `(..., channels, samples)` audio.

        `samples` is the input length; for chunk lengths that are a multiple of the hop (every
        public config) it is exactly the length the centred inverse gives anyway.
        """
        *lead, twice_channels, bins, frames = spec.shape
        full = self.n_fft // 2 + 1
        spec = nn.functional.pad(spec.float(), (0, 0, 0, full - bins))
        spec = spec.reshape(-1, 2, full, frames)
        with torch.autocast(spec.device.type, enabled=False):
            audio = torch.istft(
                torch.complex(spec[:, 0], spec[:, 1]),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window.float(),
                center=True,
                length=samples,
            )
        return audio.reshape(*lead, twice_channels // 2, samples)
