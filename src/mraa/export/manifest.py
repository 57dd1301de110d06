"""What defines a folder of exported ONNX graphs, so a reused ``onnx_dir`` is never another model's.

:func:`mraa.export.onnx.export_onnx` writes ``onnx-manifest.json`` beside the graphs: the manifest format,
the frame size (H, W), the SHA-256 of the weights the graphs were made from (the networks in their export
form, so a ``.pth`` and the ``.safetensors`` exported from it, fused or not, give the same digest) and, when
the caller knows it, the SHA-256 of the checkpoint file. :func:`check_onnx_dir` decides whether a folder can
be reused: yes when its manifest matches the model and size, "export" when it holds no graphs, and an error
when it holds graphs of another model, another size, or graphs without a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mraa.errors import MRAAError

MANIFEST_NAME = "onnx-manifest.json"
MANIFEST_FORMAT = 1  # bump when the graphs' inputs, outputs or export form change


def weights_digest(modules: dict[str, nn.Module]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of every tensor in the modules' state dicts."""
    digest = hashlib.sha256()
    for module_name in sorted(modules):
        for key, value in sorted(modules[module_name].state_dict().items()):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{module_name}.{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_manifest(
    weights: str, size: tuple[int, int], checkpoint: str | os.PathLike | None
) -> dict[str, Any]:
    """The manifest of graphs exported at ``size`` (H, W) from weights with digest ``weights``."""
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "frame_size": [int(size[0]), int(size[1])],
        "weights_sha256": weights,
    }
    if checkpoint is not None:
        manifest["checkpoint"] = Path(checkpoint).name
        manifest["checkpoint_sha256"] = file_digest(checkpoint)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none; an unreadable one is an error."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MRAAError(f"{path} is not a readable ONNX manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise MRAAError(f"{path} is not a readable ONNX manifest")
    return manifest


def check_onnx_dir(
    folder: str | os.PathLike, graphs: tuple[str, ...], weights: str, size: tuple[int, int]
) -> bool:
    """True when ``folder`` holds all ``graphs`` made from these weights at ``size``; False when it holds
    none of them (export there).

    Raises:
        MRAAError: the folder is a file, or holds graphs without a manifest, or of other weights or size.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MRAAError(f"the ONNX folder {folder} is a file, not a folder")
    present = [g for g in graphs if (folder / f"{g}.onnx").is_file()]
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is None:
        if present:
            raise MRAAError(
                f"the ONNX folder {folder} holds graphs without mraa's {MANIFEST_NAME}, so they may be "
                "another model's: export into an empty folder"
            )
        return False
    wanted = make_manifest(weights, size, None)
    found = {key: manifest.get(key) for key in wanted}
    if found != wanted:
        have = f"{_size(found['frame_size'])} from weights {str(found['weights_sha256'])[:12]}"
        need = f"{_size(wanted['frame_size'])} from weights {weights[:12]}"
        raise MRAAError(
            f"the ONNX folder {folder} holds graphs of another model or size ({have}; this run needs "
            f"{need}): give an empty folder"
        )
    return len(present) == len(graphs)


def _size(value: Any) -> str:
    return f"{value[0]}x{value[1]}" if isinstance(value, list) and len(value) == 2 else str(value)
