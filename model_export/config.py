"""Training hyperparameters in one dataclass, saved with every checkpoint and model."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import CmarError
from core.fusion import check_completion, check_modality_weights
from core.modalities import EMBEDDING_DIM, MODALITIES, ModalityKind

# Fusion defaults, chosen on the OLGA development data (see README): tags weigh most and audio
# least in an artist's fused vector, and artists known by audio alone get their CF and tag
# embeddings predicted.
DEFAULT_MODALITY_WEIGHTS: dict[str, float] = {"audio": 0.5, "cf": 1.0, "tag": 2.0}
DEFAULT_COMPLETION: dict[str, float] = {"audio": 1.0}


@dataclass
class TrainConfig:
    """Everything that defines a training run; defaults follow the paper unless noted."""

    embedding_dim: int = EMBEDDING_DIM  # the shared space
    temperature: float = 0.1  # InfoNCE temperature
    lr: float = 1e-4  # Adam learning rate
    batch_size: int = 128  # artists per batch (the paper uses 2048 for large data)
    epochs: int = 60  # upper bound on epochs
    patience: int = 10  # stop after this many epochs without a better validation loss (0 = never)
    val_fraction: float = 0.1  # share of training artists held out for the validation loss
    min_modalities: int = 2  # train on artists with at least this many modalities (the paper: all 3)
    seed: int = 0  # seeds torch and the batch order
    max_tags: int = 16  # the tag encoder attends over an artist's heaviest tags, at most this many
    hidden: dict[str, tuple[int, ...]] = field(  # vector encoders' hidden layers (paper: CF 256, audio 512-256)
        default_factory=lambda: {m.name: m.hidden for m in MODALITIES if m.kind is ModalityKind.VECTOR}
    )
    tag_width: int = 256  # tag encoder: self-attention width
    tag_heads: int = 4  # tag encoder: attention heads
    subset_weight: float = 0.0  # weight of the loss between fuses of random modality halves (cmar; 0 = paper)
    thin_tags: float = 0.3  # share of training artists whose tag set is cut to its 1-3 heaviest tags (cmar; 0 = paper)
    centre: bool = True  # after training, remove each modality's mean output (cmar; not in the paper)
    modality_weights: dict[str, float] = field(  # modality -> weight in the fused sum (cmar; the paper: all 1)
        default_factory=lambda: dict(DEFAULT_MODALITY_WEIGHTS)
    )
    completion: dict[str, float] = field(  # modality subset -> weight of its missing modalities' predictions (cmar)
        default_factory=lambda: dict(DEFAULT_COMPLETION)
    )
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into the manifest

    def __post_init__(self) -> None:
        problems = []
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            problems.append("temperature must be a finite number > 0")
        if not math.isfinite(self.lr) or self.lr <= 0:
            problems.append("lr must be a finite number > 0")
        if not math.isfinite(self.subset_weight) or self.subset_weight < 0:
            problems.append("subset_weight must be a finite number >= 0")
        if not math.isfinite(self.thin_tags) or not 0 <= self.thin_tags <= 1:
            problems.append("thin_tags must be a share between 0 and 1")
        if not 2 <= self.batch_size <= 1_000_000:
            problems.append("batch_size must be between 2 (InfoNCE needs negatives) and 1,000,000")
        if not 1 <= self.epochs <= 100_000:
            problems.append("epochs must be between 1 and 100,000")
        if self.patience < 0:
            problems.append("patience must be >= 0")
        if not 0 <= self.seed < 2**32:
            problems.append("seed must be between 0 and 2^32 - 1")
        if not 0 <= self.val_fraction < 1:
            problems.append("val_fraction must be in [0, 1)")
        if self.min_modalities not in (2, 3):
            problems.append("min_modalities must be 2 or 3")
        problems += check_modality_weights(self.modality_weights) + check_completion(self.completion)
        if self.tag_width % self.tag_heads:
            problems.append("tag_width must be divisible by tag_heads")
        if problems:
            raise CmarError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by `to_dict`, refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise CmarError(f"unknown training config key(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        if "hidden" in values:
            values["hidden"] = {name: tuple(h) for name, h in values["hidden"].items()}
        return cls(**values)
