"""Models of the DP study: the Opacus-report MNIST CNN and GroupNorm ResNet-18 / -50 with a pretrained backbone.

Both take an optional dropout before the last layer. Pretrained weights are only read from a
local file (never downloaded at run time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from opacus.utils.module_utils import trainable_modules
from opacus.validators import ModuleValidator
from torch import nn

GROUPS = 32  # GroupNorm groups of the GN-ResNet backbones


class DPSettingError(ValueError):
    """A model or setting cannot be trained as configured; the message names what and how to fix it."""


class MnistCNN(nn.Module):
    """Two conv + two dense layers (Opacus MNIST example): conv 8x8/2 (16), pool, conv 4x4/2 (32), pool, 32, classes."""

    def __init__(self, in_shape: tuple[int, ...], n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_shape[0], 16, 8, stride=2, padding=3)
        self.conv2 = nn.Conv2d(16, 32, 4, stride=2)
        self.pool = nn.MaxPool2d(2, 1)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *in_shape)).shape[1]
        self.fc1 = nn.Linear(flat, 32)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(32, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional part, flattened."""
        x = self.pool(torch.relu(self.conv1(x)))
        return self.pool(torch.relu(self.conv2(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.fc2(self.drop(torch.relu(self.fc1(self.features(x)))))


class BasicBlock(nn.Module):
    """ResNet basic block with GroupNorm (torchvision's parameter names)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.GroupNorm(GROUPS, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.GroupNorm(GROUPS, c_out)
        self.downsample = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.GroupNorm(GROUPS, c_out))
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual output."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetGN(nn.Module):
    """A GroupNorm ResNet in torchvision's key layout (conv1, bn1, layer1..4, fc), dropout before `fc`; its four
    stages come from `make_stages` (called after the stem, so parameters are created in the layout's order)."""

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        make_stages: Callable[[], list[nn.Sequential]],
        width_out: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.GroupNorm(GROUPS, 64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1, self.layer2, self.layer3, self.layer4 = make_stages()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width_out, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.drop(x.mean(dim=(2, 3))))


def resnet18_stages() -> list[nn.Sequential]:
    """ResNet-18's four stages of two basic blocks (widths 64 to 512)."""
    c_in, layers = 64, []
    for i, width in enumerate((64, 128, 256, 512)):
        layers.append(nn.Sequential(BasicBlock(c_in, width, 1 if i == 0 else 2), BasicBlock(width, width, 1)))
        c_in = width
    return layers


class ResNet18GN(ResNetGN):
    """ResNet-18 with GroupNorm in torchvision's key layout (conv1, bn1, layer1..4, fc), dropout before `fc`."""

    def __init__(self, in_channels: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__(in_channels, n_classes, resnet18_stages, 512, dropout)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3, 1x1, expansion 4) with GroupNorm (torchvision's parameter names)."""

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = 4 * width
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.GroupNorm(GROUPS, width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.GroupNorm(GROUPS, width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.GroupNorm(GROUPS, c_out)
        self.downsample = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.GroupNorm(GROUPS, c_out))
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual output."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


def resnet50_stages() -> list[nn.Sequential]:
    """ResNet-50's four stages of 3, 4, 6 and 3 bottleneck blocks (widths 64 to 512, outputs 4x)."""
    c_in, layers = 64, []
    for i, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        stage = [Bottleneck(c_in, width, 1 if i == 0 else 2)]
        stage += [Bottleneck(4 * width, width, 1) for _ in range(blocks - 1)]
        layers.append(nn.Sequential(*stage))
        c_in = 4 * width
    return layers


class ResNet50GN(ResNetGN):
    """ResNet-50 with GroupNorm ([DG]'s model) in torchvision's key layout, dropout before `fc`."""

    def __init__(self, in_channels: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__(in_channels, n_classes, resnet50_stages, 2048, dropout)


RESNETS = {"resnet18": ResNet18GN, "resnet50": ResNet50GN}


def load_backbone(model: nn.Module, path: str | None, name: str = "resnet18") -> None:
    """Load a local GroupNorm ResNet state dict (torchvision key layout) into everything but the head `fc`."""
    depth = name.removeprefix("resnet")
    hint = (
        f"set dp backbone_weights to a local state-dict file of a GroupNorm ResNet-{depth} in torchvision's key "
        "layout (conv1.weight, bn1.weight, layer1.0.conv1.weight, ...; e.g. the GN-ResNet ImageNet weights "
        "converted with torch.save(model.state_dict(), path)); weights are never downloaded at run time"
    )
    if not path:
        raise DPSettingError(f"model {name} needs pretrained weights: {hint}")
    if not Path(path).is_file():
        raise DPSettingError(f"pretrained backbone weights not found at {path!r}: {hint}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if any(k.endswith("running_mean") for k in state):
        raise DPSettingError(
            f"{path}: a BatchNorm checkpoint (it has running_mean); Opacus cannot train BatchNorm, so {hint}"
        )
    body = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = model.load_state_dict(body, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise DPSettingError(
            f"{path}: keys do not match a GroupNorm ResNet-{depth} (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}); {hint}"
        )


def build_model(conf: dict, in_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The configuration's model for inputs of `in_shape` (C, H, W), initialised from the global torch RNG."""
    if len(in_shape) != 3:
        raise DPSettingError(
            f"dataset {conf['dataset']!r} has inputs of shape {in_shape}; the DP study's models need images (C, H, W)"
        )
    if conf["model"] == "cnn":
        return MnistCNN(in_shape, n_classes, conf["dropout"])
    model = RESNETS[conf["model"]](in_shape[0], n_classes, conf["dropout"])
    load_backbone(model, conf.get("backbone_weights"), conf["model"])
    return model


def check_clippable(model: nn.Module, configuration: str) -> None:
    """Raise DPSettingError naming every trainable layer that per-example clipping (Opacus) cannot handle."""
    bad = []
    for name, module in trainable_modules(model):
        validator = ModuleValidator.VALIDATORS.get(type(module))
        errors = validator(module) if validator else []
        if errors:
            reason = str(errors[0]).split(". ")[0]
            bad.append(f"layer {name!r} ({type(module).__name__}): {reason}")
    if bad:
        raise DPSettingError(
            f"configuration {configuration!r} clips per-example gradients, but " + "; ".join(bad) + ". "
            "Replace BatchNorm by GroupNorm (opacus.validators.ModuleValidator.fix) or use an algorithm "
            "without clipping (sgd, sam)"
        )
