"""What the public releases hold: rows per split and examples per group, each with its source, so `data check`
can tell a complete download from a broken or partial one.

Group names are `"<class>, <attribute>"` as the loaders name them (`class_names`, `attribute_names`). Counts
hold for the loader's default options only (CelebA's Blond_Hair x Male, CivilComments' WILDS split).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Release:
    """Rows per split and (optionally) examples per group per split of one release, and where they come from."""

    rows: dict[str, int]
    source: str
    groups: dict[str, dict[str, int]] = field(default_factory=dict)


def groups_of(class_names: list[str], attribute_names: list[str], counts: list[int]) -> dict[str, int]:
    """{"class, attribute": count} with counts in group order `n_attributes * y + a` (group_DRO's order)."""
    names = [f"{c}, {a}" for c in class_names for a in attribute_names]
    return dict(zip(names, counts, strict=True))


_BIRDS, _PLACES = ["landbird", "waterbird"], ["land", "water"]
_BLOND, _MALE = ["not Blond_Hair", "Blond_Hair"], ["not Male", "Male"]
_NLI, _NEGATION = ["contradiction", "entailment", "neutral"], ["no negation", "negation"]
# group_DRO (Sagawa et al. 2020), the authors' analysis script: `n_train`, `n_val`, `n_test` per group of
# Waterbirds, CelebA and MultiNLI; their sums are the split sizes below.
_GROUP_DRO = "group_DRO (Sagawa et al. 2020) per-group counts (n_train / n_val / n_test of its analysis script)"

RELEASES: dict[str, Release] = {
    # metadata.csv of waterbird_complete95_forest2water2: 11,788 rows (the CUB-200-2011 images)
    "waterbirds": Release(
        rows={"train": 4795, "val": 1199, "test": 5794},
        source=f"waterbird_complete95_forest2water2/metadata.csv, 11,788 rows; {_GROUP_DRO}",
        groups={"train": groups_of(_BIRDS, _PLACES, [3498, 184, 56, 1057]),
                "val": groups_of(_BIRDS, _PLACES, [467, 466, 133, 133]),
                "test": groups_of(_BIRDS, _PLACES, [2255, 2255, 642, 642])}),
    # CelebA's list_eval_partition: 202,599 aligned images; the per-attribute totals of each split (e.g. Male
    # 68,261 / 8,458 / 7,715) agree with these groups
    "celeba": Release(
        rows={"train": 162770, "val": 19867, "test": 19962},
        source=f"CelebA list_eval_partition (Liu et al. 2015), 202,599 images; {_GROUP_DRO}",
        groups={"train": groups_of(_BLOND, _MALE, [71629, 66874, 22880, 1387]),
                "val": groups_of(_BLOND, _MALE, [8535, 8276, 2874, 182]),
                "test": groups_of(_BLOND, _MALE, [9767, 7535, 2480, 180])}),
    # group_DRO's metadata_random.csv: the random 50 / 20 / 30 split of MultiNLI 1.0's labelled pairs
    "multinli": Release(
        rows={"train": 206175, "val": 82462, "test": 123712},
        source=f"group_DRO metadata_random.csv, 412,349 rows; {_GROUP_DRO}",
        groups={"train": groups_of(_NLI, _NEGATION, [57498, 11158, 67376, 1521, 66630, 1992]),
                "val": groups_of(_NLI, _NEGATION, [22814, 4634, 26949, 613, 26655, 797]),
                "test": groups_of(_NLI, _NEGATION, [34597, 6655, 40496, 886, 39930, 1148])}),
    # WILDS v1.0 all_data_with_identities.csv: 448,000 comments (Koh et al. 2021); group counts not checked
    "civilcomments": Release(
        rows={"train": 269038, "val": 45180, "test": 133782},
        source="CivilComments-WILDS v1.0 all_data_with_identities.csv, 448,000 rows (Koh et al. 2021)"),
}
