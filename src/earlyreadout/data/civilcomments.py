"""`civilcomments`: toxicity classification where mentions of identities are the shortcut (WILDS release)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import ROOT_OPTION, find_dataset_dir, read_table, split_codes
from earlyreadout.data.text import TEXT_OPTIONS, TextDataset, make_encoder
from earlyreadout.params import Param

IDENTITIES = ("male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white")
FILE = "all_data_with_identities.csv"
LAYOUTS = ("civilcomments_v1.0", "civilcomments")


class CivilComments:
    """CivilComments-WILDS (Koh et al. 2021): label `toxicity >= 0.5`, attribute `attribute >= 0.5`
    (default `identity_any`, the distillation paper's 4 groups `2*y + a`).

    Every split also carries WILDS' 16 overlapping evaluation groups (for each identity in `IDENTITIES`,
    identity=1 with y=0 and with y=1), reported as `eval_groups` in the metrics; their minimum is the
    WILDS worst-group accuracy.
    """

    default_model: ClassVar[str] = "hf"
    published_model: ClassVar[str] = "a pretrained BERT: --model hf model.path=DIR data.tokenizer=DIR (configs/civilcomments-teacher.yaml)"
    fallback_model: ClassVar[str] = "text-transformer"  # trains without local pretrained files
    options: ClassVar[dict[str, Param]] = {
        "root": ROOT_OPTION,
        "attribute": Param("identity_any", "identity column used as the spurious attribute (binarised at 0.5)"),
        "split_codes": Param({"train": "train", "val": "val", "test": "test"}, "value of `split` for each split",
                             kind=dict),
        **TEXT_OPTIONS,
        "max_len": Param(300, "tokens per comment, including special tokens (WILDS uses 300)", low=4),
    }

    def __init__(self, **opts: Any):
        self.o = opts

    def splits(self) -> dict[str, GroupedDataset]:
        folder = find_dataset_dir(self.o["root"], "civilcomments", FILE, LAYOUTS)
        path = folder / FILE
        attribute = self.o["attribute"]
        needed = ["comment_text", "split", "toxicity", attribute, *IDENTITIES]
        meta = read_table(path, "civilcomments", list(dict.fromkeys(needed)), index_col=0)
        meta["comment_text"] = meta["comment_text"].fillna("").astype(str)
        split = split_codes(meta["split"], self.o["split_codes"], path, "split", "civilcomments")
        encoder = make_encoder(self.o, meta["comment_text"][split == "train"].tolist())
        out = {}
        for name in ("train", "val", "test"):
            rows = meta[split == name]
            y = torch.tensor((rows["toxicity"].to_numpy() >= 0.5).astype(int))
            a = torch.tensor((rows[attribute].fillna(0).to_numpy() >= 0.5).astype(int))
            ds = TextDataset(rows["comment_text"].tolist(), None, encoder, self.o["max_len"], name="civilcomments",
                             split=name, y=y, a=a, class_names=["non-toxic", "toxic"],
                             attribute_names=[f"no {attribute}", attribute])
            identity = torch.tensor(rows[list(IDENTITIES)].fillna(0).to_numpy() >= 0.5)
            names = [f"{i}=1, y={c}" for i in IDENTITIES for c in ds.class_names]
            membership = torch.stack([identity[:, k] & (y == c) for k in range(len(IDENTITIES)) for c in (0, 1)], 1)
            ds.eval_groups = (names, membership)
            out[name] = ds
        return out
