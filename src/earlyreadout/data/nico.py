"""`nico`: NICO-Animal; the context of a photo (on snow, in water, ...) is the shortcut."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import ROOT_OPTION, VAL_CARVE_OPTIONS, split_off
from earlyreadout.data.images import IMAGE_OPTIONS, IMAGE_SUFFIXES, image_split
from earlyreadout.errors import UserError
from earlyreadout.params import Param

LAYOUTS = ("NICO/Animal", "Animal", "")


def find_animal_dir(root: str | None) -> Path:
    """The folder holding `<class>/<context>/` image folders: root, root/Animal or root/NICO/Animal."""
    if root is None:
        raise UserError("dataset 'nico' reads NICO from your disk: pass --data-root PATH (the folder holding "
                        "NICO/Animal, or Animal itself)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UserError(f"nico: data root {str(base)!r} does not exist or is not a folder")
    for layout in LAYOUTS:
        folder = base / layout if layout else base
        if folder.is_dir() and any(c.is_dir() and any(x.is_dir() for x in c.iterdir()) for c in folder.iterdir()):
            return folder
    tried = ", ".join(str(base / layout) for layout in LAYOUTS)
    raise UserError(f"nico: no <class>/<context>/ image folders found (looked in {tried}); "
                    f"the root holds: {', '.join(sorted(p.name for p in base.iterdir())) or '(empty)'}")


class NICO:
    """NICO Animal (He et al. 2021): 10 classes photographed in 9-10 contexts each; the attribute is the
    context (groups are class x context; pairs that never occur are empty groups, left out of WGA).

    Protocol (documented in docs/datasets.md): per class, contexts are ranked by image count (most first,
    ties by name). The contexts named in `test_contexts`, or else the last `test_contexts_per_class` of
    each class, form the test set; the rest form the training pool, where the k-th of K contexts keeps a
    seeded fraction `imbalance ** (k / (K - 1))` of its images (1.0 keeps all; 0.1 gives a long tail down
    to 10 %). Validation is a seeded `val_fraction` of the training pool (`val_from: train`) or of the
    test contexts (`val_from: test`).
    """

    default_model: ClassVar[str] = "resnet"
    published_model: ClassVar[str] = "an ImageNet-pretrained ResNet-18: -c configs/nico-sieve.yaml, or --weights resnet18-f37072fd.pth"
    options: ClassVar[dict[str, Param]] = {
        "root": ROOT_OPTION,
        "test_contexts": Param(None, "context names held out for test (in every class that has them); "
                               "null = the rarest `test_contexts_per_class` of each class", nullable=True, kind=list),
        "test_contexts_per_class": Param(2, "contexts per class held out for test when test_contexts is null", low=1),
        "imbalance": Param(1.0, "long-tail ratio of the training contexts (1.0 = keep all images)", low=0.0,
                           high=1.0, open_low=True),
        **VAL_CARVE_OPTIONS,
        "split_seed": Param(0, "seed of the subsampling and validation carve-out", low=0),
        **IMAGE_OPTIONS,
    }

    def __init__(self, **opts: Any):
        self.o = opts

    def _index(self, folder: Path) -> dict[str, dict[str, list[Path]]]:
        """{class: {context: sorted image paths}}."""
        index: dict[str, dict[str, list[Path]]] = {}
        for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
            contexts = {c.name: sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
                        for c in sorted(cls.iterdir()) if c.is_dir()}
            contexts = {k: v for k, v in contexts.items() if v}
            if contexts:
                index[cls.name] = contexts
        return index

    def splits(self) -> dict[str, GroupedDataset]:
        o = self.o
        index = self._index(find_animal_dir(o["root"]))
        all_contexts = sorted({c for contexts in index.values() for c in contexts})
        if o["test_contexts"] is not None:
            unknown = [c for c in o["test_contexts"] if c not in all_contexts]
            if unknown:
                raise UserError(f"nico: unknown test context(s) {', '.join(map(repr, unknown))}; contexts found: "
                                f"{', '.join(all_contexts)}")
        gen = torch.Generator().manual_seed(o["split_seed"])
        pools: dict[str, list[tuple[Path, int, int]]] = {"train": [], "test": []}
        for y, (cls, contexts) in enumerate(index.items()):
            ranked = sorted(contexts, key=lambda c: (-len(contexts[c]), c))
            if o["test_contexts"] is not None:
                held = [c for c in ranked if c in o["test_contexts"]]
            else:
                held = ranked[len(ranked) - min(o["test_contexts_per_class"], len(ranked) - 1):]
            kept = [c for c in ranked if c not in held]
            if not kept:
                raise UserError(f"nico: class {cls!r} has no training context left; hold out fewer contexts")
            for k, ctx in enumerate(kept):
                keep = o["imbalance"] ** (k / max(len(kept) - 1, 1))
                files = contexts[ctx]
                n = max(1, round(len(files) * keep))
                pick = torch.randperm(len(files), generator=gen)[:n].sort().values.tolist()
                pools["train"] += [(files[i], y, all_contexts.index(ctx)) for i in pick]
            pools["test"] += [(f, y, all_contexts.index(c)) for c in held for f in contexts[c]]
        source = o["val_from"]
        rest, held_out = split_off(len(pools[source]), o["val_fraction"], o["split_seed"])
        chosen = {"train": pools["train"], "val": [pools[source][i] for i in held_out], "test": pools["test"]}
        chosen[source] = [pools[source][i] for i in rest]
        out = {}
        for name, rows in chosen.items():
            y = torch.tensor([r[1] for r in rows], dtype=torch.long)
            a = torch.tensor([r[2] for r in rows], dtype=torch.long)
            out[name] = image_split("nico", name, [r[0] for r in rows], y, a, list(index), all_contexts, o)
        return out
