"""ResNet-56 pretrained on CIFAR-100 as a frozen feature extractor (the cifar2 'embedding' variant)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import DataError

HUB_REPO = "chenyaofo/pytorch-cifar-models"
HUB_MODEL = "cifar100_resnet56"
CIFAR100_MEAN = (0.5070, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2761)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class CifarResNet(nn.Module):
    """CIFAR ResNet (3 stages of `blocks` basic blocks); state-dict compatible with the hub models."""

    def __init__(self, blocks: int = 9, num_classes: int = 100) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            stages.append(
                nn.Sequential(*[_Block(cin if b == 0 else cout, cout, stride if b == 0 else 1) for b in range(blocks)])
            )
            cin = cout
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (global average pool, 64 dims)."""
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))


def load_resnet56(checkpoint: str | Path | None, allow_download: bool) -> CifarResNet:
    """The CIFAR-100 ResNet-56 from a local state-dict file, or from torch.hub when downloads are allowed."""
    model = CifarResNet(blocks=9, num_classes=100)
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise DataError(
                f"ResNet-56 checkpoint {path} not found; set datasets.cifar2.resnet_checkpoint to a state-dict file"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    elif allow_download:
        state = torch.hub.load(HUB_REPO, HUB_MODEL, pretrained=True, trust_repo=True).state_dict()
    else:
        raise DataError(
            "cifar2 with features 'embedding' needs the CIFAR-100 ResNet-56 weights: set "
            "datasets.cifar2.resnet_checkpoint to a local state-dict file, or `data.download: true` "
            f"to fetch {HUB_REPO}:{HUB_MODEL} through torch.hub (or use features: pca)"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"ResNet-56 checkpoint does not match the CIFAR ResNet-56 architecture: {exc}") from exc
    return model.eval()


@torch.no_grad()
def embed_images(model: CifarResNet, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Embed uint8 (N, 3, 32, 32) images into (N, 64) float32 features."""
    mean = torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR100_STD).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).float() / 255.0
        out.append(model.embed((x - mean) / std))
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 64), np.float32)
