"""What the CPU offers that the agents' opt-in fast paths depend on."""

from __future__ import annotations


def native_bf16() -> str:
    """The CPU's native bf16 matmul flags (Linux /proc/cpuinfo), e.g. 'amx_bf16 avx512_bf16';
    '' when it has none (bf16 is then emulated, several times slower than float32) and
    'unknown' when /proc/cpuinfo cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []
            )
    except OSError:
        return "unknown"
    return " ".join(x for x in ("amx_bf16", "avx512_bf16") if x in flags)
