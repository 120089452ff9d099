"""Encoders, contrastive loss, training and ONNX export (the only package that needs torch)."""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    from core.errors import CmarError

    raise CmarError(
        "training needs torch: install the train extra, pip install -c constraints.txt -e '.[train]'"
    ) from exc
