"""Verified on-disk caches: safetensors arrays plus a JSON meta that vouches for them by sha256.

The arrays are written first and the meta last, each atomically, so a crash in between leaves a meta that
does not match the arrays; a reader then treats the cache as absent and the caller rebuilds it. A cache whose
meta disagrees with what the caller expects (another model's fingerprint, other parameters, an older format)
is never used. Nothing here unpickles.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from probe.util import atomic_write_bytes

logger = logging.getLogger(__name__)


def write_cache(meta_path: Path, arrays_path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` (safetensors) then ``meta`` (JSON, with the arrays' sha256 added)."""
    from safetensors.numpy import save

    blob = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    atomic_write_bytes(arrays_path, blob)
    record = {**meta, "arrays_sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write_bytes(meta_path, json.dumps(record, indent=2).encode())


def read_cache(
    meta_path: Path, arrays_path: Path, expected: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """(meta, arrays) when both files exist, the meta holds every ``expected`` item and vouches for the arrays.

    Returns None (the caller rebuilds) for a missing, partial, corrupt or foreign cache.
    """
    from safetensors.numpy import load_file

    if not meta_path.is_file() or not arrays_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        blob = arrays_path.read_bytes()
        mismatched = [k for k, v in expected.items() if meta.get(k) != v]
        if mismatched or meta.get("arrays_sha256") != hashlib.sha256(blob).hexdigest():
            logger.info("cache %s does not match (%s) or is incomplete; rebuilding", meta_path, mismatched or "sha256")
            return None
        return meta, load_file(str(arrays_path))
    except (OSError, ValueError, KeyError, AttributeError) as e:
        logger.info("cache %s is unreadable (%s); rebuilding", meta_path, e)
        return None
