"""Which CPU a bench ran on, in one line (every bench prints it beside its figures)."""

from __future__ import annotations

import os
import subprocess


def cpu_model() -> str:
    """`lscpu`'s model name, the core count and whether the CPU has avx512_bf16."""
    model, flags = "unknown CPU", ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "Flags":
                flags = value
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{model}, {os.cpu_count()} cores, avx512_bf16={'yes' if 'avx512_bf16' in flags.split() else 'no'}"
