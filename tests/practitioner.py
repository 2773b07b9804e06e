"""What a practitioner brings: images in a folder with a metadata CSV (attributes on val and test only), their
own model in their own file, trained in their own loop and saved as a state dict."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MODEL_FILE = '''
import torch
from torch import nn


class Net(nn.Module):
    """A practitioner's own small CNN."""

    def __init__(self, n_classes=2, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.deep = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x):
        return self.head(self.deep(self.features(x)).mean((2, 3)))
'''


def shortcut_image(y: int, a: int, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """A bar (horizontal for class 0, vertical for 1) on a background tinted red (a=0) or blue (a=1)."""
    image = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
    image[..., 0 if a == 0 else 2] += 120
    mid = size // 2
    if y == 0:
        image[mid - 1: mid + 1, 2:-2] = 230
    else:
        image[2:-2, mid - 1: mid + 1] = 230
    return image


def image_folder(root: Path, counts: tuple[int, int, int] = (120, 60, 60), agree: float = 0.95,
                 seed: int = 0) -> Path:
    """`root/images/*.png` and `root/metadata.csv` (id,filename,split,y,a): the tint agrees with the class on
    `agree` of train and half of val / test; the attribute column is blank on train."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["id,filename,split,y,a"]
    i = 0
    for split, n in enumerate(counts):
        for _ in range(n):
            y = int(rng.integers(2))
            a = y if rng.random() < (agree if split == 0 else 0.5) else 1 - y
            name = f"images/{i}.png"
            Image.fromarray(shortcut_image(y, a, rng)).save(root / name)
            rows.append(f"{i},{name},{split},{y},{'' if split == 0 else a}")
            i += 1
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root / "metadata.csv"


def train_own_model(root: Path, epochs: int = 3) -> tuple[Path, Path]:
    """(model file, state-dict file): the practitioner's Net, trained in a plain loop on the train rows."""
    model_file = root / "my_models.py"
    model_file.write_text(MODEL_FILE)
    spec = importlib.util.spec_from_file_location("my_models_for_test", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net = module.Net(n_classes=2)
    lines = (root / "metadata.csv").read_text().splitlines()[1:]
    rows = [line.split(",") for line in lines if line.split(",")[2] == "0"]
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    x = torch.stack([(torch.from_numpy(np.array(Image.open(root / r[1]).convert("RGB"))).permute(2, 0, 1) / 255
                      - mean) / std for r in rows])
    y = torch.tensor([int(r[3]) for r in rows])
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(epochs):
        for i in range(0, len(x), 16):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[i:i + 16]), y[i:i + 16]).backward()
            opt.step()
    checkpoint = root / "net.pt"
    torch.save(net.state_dict(), checkpoint)
    return model_file, checkpoint
