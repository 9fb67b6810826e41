"""Which trials can share one stacked model: the pack key and the pack plan.

Members of a pack run one forward/backward/optimizer step together, so they
must agree on everything that shapes the computation or the data: the
architecture, width, latent size, data (and so image size and normal classes),
batch size, optimizer type, epochs, device, and the measurement settings.
They may differ in what becomes a per-member tensor or a per-member choice
inside the step: `BATCHABLE` below. The key is therefore "the config without
the batchable fields", so a new TrialConfig field splits packs until it is
declared batchable here (safe by default).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from study.core.config import TrialConfig

# Fields a pack holds per member: tensors (factor, lr, momentum, weight_decay), per-member
# choices inside the step (amplification, metric), seeds (initial weights and batch order) and
# labels (twin_of). Everything else is the pack key.
BATCHABLE = ("amplification", "factor", "metric", "lr", "momentum", "weight_decay", "seed", "twin_of")

DEFAULT_MAX_MEMBERS = 64


def pack_key_fields(cfg: TrialConfig) -> dict[str, Any]:
    """The non-batchable part of a config (nested plain data): members of a pack share it."""
    d = cfg.to_dict()
    for name in BATCHABLE:
        d.pop(name)
    return d


def pack_key(cfg: TrialConfig) -> str:
    """A short hash of `pack_key_fields`: equal exactly when two configs can share a pack."""
    blob = json.dumps(pack_key_fields(cfg), sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Pack:
    """Trials trained as one stacked model; `indices` point into the planned config list."""

    pack_id: str  # stable for the same members: `<key>-<first member index>`
    key: str
    indices: tuple[int, ...]
    configs: tuple[TrialConfig, ...]

    def __len__(self) -> int:
        return len(self.configs)


def pack_plan(
    configs: Iterable[TrialConfig | dict[str, Any]], max_members: int = DEFAULT_MAX_MEMBERS
) -> list[Pack]:
    """Group configs by pack key, in first-seen order, into packs of at most `max_members`.

    Every config lands in exactly one pack; a config whose key no other shares
    is a pack of one (run it solo or packed: the result is the same).
    """
    if max_members < 1:
        raise ValueError(f"max_members must be >= 1, got {max_members}; use 1 to turn packing off")
    cfgs = [c if isinstance(c, TrialConfig) else TrialConfig.from_dict(c) for c in configs]
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(pack_key(cfg), []).append(i)
    packs = []
    for key, members in groups.items():
        for start in range(0, len(members), max_members):
            chunk = tuple(members[start : start + max_members])
            packs.append(Pack(f"{key}-{chunk[0]}", key, chunk, tuple(cfgs[i] for i in chunk)))
    return packs


def check_packable(configs: Sequence[TrialConfig]) -> None:
    """Raise naming the fields that differ when `configs` cannot share one pack."""
    if not configs:
        raise ValueError("a pack needs at least one trial config")
    lead = pack_key_fields(configs[0])
    for i, cfg in enumerate(configs[1:], start=1):
        other = pack_key_fields(cfg)
        if other != lead:
            differ = sorted(_diff(lead, other))
            msg = (
                f"trial configs 0 and {i} cannot share a pack: they differ in {', '.join(differ)} "
                f"(only {', '.join(BATCHABLE)} may differ within a pack); group them with pack_plan()"
            )
            raise ValueError(msg)


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(prefix + k)
    return out


def varying_key_fields(configs: Sequence[TrialConfig]) -> list[str]:
    """The dotted pack-key fields whose values differ among `configs`: what splits a study into packs."""
    flat = [_flatten(pack_key_fields(c)) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]


def describe_plan(packs: Sequence[Pack], configs: Sequence[TrialConfig]) -> str:
    """One line for `validate`: trials, packs, their sizes, and the fields that split them."""
    sizes = sorted(len(p) for p in packs)
    varying = varying_key_fields(configs)
    split = f"pack key varies in {', '.join(varying)}" if varying else "one pack key"
    return (
        f"{len(configs)} trials in {len(packs)} packs of {sizes[0]}-{sizes[-1]} members; {split} "
        f"(members may differ only in {', '.join(BATCHABLE)})"
    )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v
    return out
