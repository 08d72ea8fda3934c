"""Convert a released checkpoint to our directory format: ``python -m policies.convert SRC DST``.

SRC is an allenact ``.pt`` (safe_*.pt, FLaRe RL), a Lightning ``.ckpt`` (FLaRe IL) or one of our directories.
The result loads with ``SafeVLAPolicy.from_pretrained(DST)``; every key and shape is checked on the way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from policies.configuration_safevla import load_policy_config
from policies.runtime import SafeVLAPolicy
from safevla_node.errors import SafeVLAError

__all__ = ["convert", "main"]


def convert(src: str | Path, dst: str | Path, config_path: str | Path | None = None,
            dinov2_path: str | Path | None = None, tokenizer_path: str | Path | None = None,
            trust_pickle: bool = False) -> Path:
    """Load ``src`` strictly on CPU and write it to ``dst`` in our format; returns ``dst``.

    Raises:
        PolicyLoadError: the source does not fit the (given or inferred) config.
        ConfigError: the config file is invalid.
    """
    config = load_policy_config(config_path) if config_path is not None else None
    policy = SafeVLAPolicy.from_pretrained(src, device="cpu", precision="fp32", config=config,
                                           dinov2_path=dinov2_path, tokenizer_path=tokenizer_path,
                                           trust_pickle=trust_pickle)
    return policy.save_pretrained(dst)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the error and returns 1 on a bad checkpoint."""
    parser = argparse.ArgumentParser(prog="python -m policies.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="allenact .pt, Lightning .ckpt or policy directory")
    parser.add_argument("dst", help="output directory")
    parser.add_argument("--config", help="policy YAML (default: saved config, else full SafeVLA / FLaRe by keys)")
    parser.add_argument("--dinov2", help="local dinov2_vits14_pretrain.pth to store alongside the policy")
    parser.add_argument("--tokenizer", help="WordTokenizer JSON or local t5-small tokenizer directory")
    parser.add_argument("--trust-pickle", action="store_true", help="allow arbitrary pickled objects in SRC")
    args = parser.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.config, args.dinov2, args.tokenizer, args.trust_pickle)
    except SafeVLAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
