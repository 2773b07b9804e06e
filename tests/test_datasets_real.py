"""Loaders of the public benchmark releases, on tiny trees written here in the releases' exact formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from earlyreadout.data import DATASETS, BatchLoader, load_splits
from earlyreadout.errors import UserError
from earlyreadout.metrics import evaluate_logits, overlapping_group_accuracy
from earlyreadout.params import resolve


def splits(name: str, **options):
    opts, problems = resolve(DATASETS.get(name).options, options, name)
    assert not problems, problems
    return load_splits(name, opts)


def image(path: Path, size=(20, 24), color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


# --- Waterbirds ---------------------------------------------------------------------------------------
def waterbirds_tree(root: Path) -> Path:
    folder = root / "cub" / "data" / "waterbird_complete95_forest2water2"
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    spec = [(0, 0, 0), (0, 0, 1), (1, 0, 1), (1, 0, 0), (0, 1, 0), (1, 1, 1), (0, 2, 1), (1, 2, 0)]
    for i, (y, split, place) in enumerate(spec):
        name = f"{'001.Black_footed_Albatross' if y else '045.Northern_Fulmar'}/bird_{i}.jpg"
        image(folder / name)
        rows.append(f"{i + 1},{name},{y},{split},{place},/p/places/{i}.jpg")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_waterbirds_reads_release_layout_and_groups(tmp_path):
    waterbirds_tree(tmp_path)
    s = splits("waterbirds", root=str(tmp_path), image_size=16)
    assert [len(s[k]) for k in ("train", "val", "test")] == [4, 2, 2]
    train = s["train"]
    assert train.y.tolist() == [0, 0, 1, 1] and train.a.tolist() == [0, 1, 1, 0]
    assert train.g.tolist() == [0, 1, 3, 2]  # g = 2*y + place
    assert train.group_names[1] == "y=landbird, a=water"
    x = train.get_x(0)
    assert x.shape == (3, 16, 16) and train.info["shape"] == (3, 16, 16)
    red = (200 / 255 - 0.485) / 0.229  # ImageNet normalisation of the red channel
    assert torch.allclose(x[0], torch.full((16, 16), red), atol=0.1)  # JPEG shifts colours a little
    batch = next(iter(BatchLoader(train, 3)))
    assert batch["x"].shape == (3, 3, 16, 16) and batch["g"].tolist() == [0, 1, 3]


def test_waterbirds_accepts_the_dataset_folder_itself_and_augments_only_train(tmp_path):
    folder = waterbirds_tree(tmp_path)
    s = splits("waterbirds", root=str(folder), image_size=16, augment=True, cache=False)
    names = [type(t).__name__ for t in s["train"].transform.transforms]
    assert "RandomResizedCrop" in names and "RandomResizedCrop" not in [
        type(t).__name__ for t in s["test"].transform.transforms]
    cached = splits("waterbirds", root=str(folder), image_size=16, augment=True)  # crops the cached tensors
    assert cached["train"].augment is not None and cached["test"].augment is None


def test_waterbirds_errors_name_paths_and_columns(tmp_path):
    with pytest.raises(UserError, match="--data-root"):
        splits("waterbirds")
    with pytest.raises(UserError, match="does not exist"):
        splits("waterbirds", root=str(tmp_path / "nowhere"))
    (tmp_path / "stray.txt").write_text("")
    with pytest.raises(UserError, match=r"no 'metadata.csv'.*stray.txt"):
        splits("waterbirds", root=str(tmp_path))
    folder = waterbirds_tree(tmp_path)
    (folder / "metadata.csv").write_text("img_id,img_filename,label,split,place\n1,a.jpg,0,0,0\n")
    with pytest.raises(UserError, match=r"no column 'y'.*columns present: img_id, img_filename, label"):
        splits("waterbirds", root=str(tmp_path))


def test_missing_image_is_a_user_error(tmp_path):
    folder = waterbirds_tree(tmp_path)
    (folder / "045.Northern_Fulmar" / "bird_0.jpg").unlink()
    with pytest.raises(UserError, match="bird_0.jpg"):  # the cache build checks every file
        splits("waterbirds", root=str(tmp_path), image_size=16)
    train = splits("waterbirds", root=str(tmp_path), image_size=16, cache=False)["train"]
    with pytest.raises(UserError, match="bird_0.jpg"):  # without the cache: when the image is asked for
        train.get_x(0)


# --- CelebA ---------------------------------------------------------------------------------------------
ATTRS = ["5_o_Clock_Shadow", "Blond_Hair", "Male", "Smiling", "Young"]


def celeba_values():
    # image -> (attribute values, partition)
    return {f"{i:06d}.jpg": ([1 if (i + k) % 2 else -1 for k in range(len(ATTRS))], i % 3) for i in range(1, 10)}


def test_celeba_csv_form_nested_images_joined_on_image_id(tmp_path):
    folder = tmp_path / "celebA_v1.0"
    values = celeba_values()
    for name in values:
        image(folder / "img_align_celeba" / "img_align_celeba" / name, size=(178, 218))
    attr = ["image_id," + ",".join(ATTRS)] + [f"{n}," + ",".join(map(str, v)) for n, (v, _) in values.items()]
    (folder / "list_attr_celeba.csv").write_text("\n".join(attr) + "\n")
    part = ["image_id,partition"] + [f"{n},{p}" for n, (_, p) in reversed(values.items())]  # other row order
    (folder / "list_eval_partition.csv").write_text("\n".join(part) + "\n")
    s = splits("celeba", root=str(tmp_path), image_size=32)
    train = s["train"]  # partition 0: images 3, 6, 9
    assert [p.name for p in train.paths] == ["000003.jpg", "000006.jpg", "000009.jpg"]
    assert train.y.tolist() == [0, 1, 0]  # Blond_Hair: (i + 1) odd -> 1
    assert train.a.tolist() == [1, 0, 1]  # Male: (i + 2) odd
    assert train.paths[0].parent.name == "img_align_celeba" and train.paths[0].parent.parent.name == "img_align_celeba"
    assert train.get_x(0).shape == (3, 32, 32)
    other = splits("celeba", root=str(tmp_path), target="Smiling", attribute="Young", image_size=32)["val"]
    assert other.class_names == ["not Smiling", "Smiling"]
    with pytest.raises(UserError, match=r"no column 'Blonde_Hair'.*did you mean 'Blond_Hair'"):
        splits("celeba", root=str(tmp_path), target="Blonde_Hair")


def test_celeba_original_text_form(tmp_path):
    values = celeba_values()
    for name in values:
        image(tmp_path / "img_align_celeba" / name, size=(178, 218))
    lines = [str(len(values)), " ".join(ATTRS)]
    lines += [f"{n} " + "  ".join(f"{v:2d}" for v in vals) for n, (vals, _) in values.items()]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, (_, p) in values.items()))
    test = splits("celeba", root=str(tmp_path), image_size=16)["test"]  # partition 2: 2, 5, 8
    assert [p.name for p in test.paths] == ["000002.jpg", "000005.jpg", "000008.jpg"]
    assert test.y.tolist() == [1, 0, 1] and test.g.tolist() == [2, 1, 2]


# --- MultiNLI -------------------------------------------------------------------------------------------
def test_multinli_indexes_the_concatenated_jsonl_and_never_needs_pickles(tmp_path):
    records = {
        "multinli_1.0_train.jsonl": [("A man sleeps.", "Nobody sleeps.", "contradiction"),
                                     ("A dog runs.", "An animal moves.", "entailment"),
                                     ("It rains.", "Unclear.", "-")],
        "multinli_1.0_dev_matched.jsonl": [("Cats purr.", "Cats never purr!", "contradiction")],
        "multinli_1.0_dev_mismatched.jsonl": [("She sings.", "She sings well.", "neutral")],
    }
    for name, rows in records.items():
        (tmp_path / name).write_text("".join(
            json.dumps({"sentence1": p, "sentence2": h, "gold_label": g, "pairID": "x"}) + "\n" for p, h, g in rows))
    (tmp_path / "cached_train_bert").write_bytes(b"\x80not a pickle to open")
    meta = ",gold_label,sentence2_has_negation,split\n0,0,1,0\n1,1,0,0\n2,0,1,1\n3,2,0,2\n"
    (tmp_path / "metadata_random.csv").write_text(meta)
    s = splits("multinli", root=str(tmp_path), max_len=16)
    train, val, test = s["train"], s["val"], s["test"]
    assert train.pairs == ["Nobody sleeps.", "An animal moves."] and val.texts == ["Cats purr."]
    assert test.y.tolist() == [2] and train.g.tolist() == [1, 2] and val.g.tolist() == [1]
    ids = train.get_x(0)
    vocab = train.info["vocabulary"]
    words = [vocab[i] for i in ids.tolist() if i != train.info["pad_id"]]
    assert words == ["[CLS]", "a", "man", "sleeps", ".", "[SEP]", "nobody", "sleeps", ".", "[SEP]"]
    assert train.info["max_len"] == 16 and len(ids) == 16
    (tmp_path / "metadata_random.csv").write_text(meta.replace("0,0,1,0\n", "0,1,1,0\n"))
    with pytest.raises(UserError, match="do not belong together"):
        splits("multinli", root=str(tmp_path))


# --- CivilComments ---------------------------------------------------------------------------------------
IDS = ["male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white"]


def civil_tree(root: Path) -> None:
    folder = root / "civilcomments_v1.0"
    folder.mkdir()
    rows = [",id,comment_text,split,toxicity," + ",".join(IDS) + ",identity_any"]
    data = [  # text, split, toxicity, identities present
        ("you are great", "train", 0.0, []), ("awful men", "train", 0.8, ["male"]),
        ("nice women", "train", 0.1, ["female", "white"]), ("bad", "train", 0.6, []),
        ("hello", "val", 0.2, ["muslim"]), ("go away", "val", 0.9, []),
        ("fine, thanks", "test", 0.4, ["black"]), ("hateful", "test", 0.7, ["black", "christian"]),
    ]
    for i, (text, split, tox, ids) in enumerate(data):
        values = ",".join("0.7" if k in ids else "0.0" for k in IDS)
        rows.append(f'{i},{100 + i},"{text}",{split},{tox},{values},{int(bool(ids))}')
    (folder / "all_data_with_identities.csv").write_text("\n".join(rows) + "\n")


def test_civilcomments_four_groups_and_wilds_overlapping_groups(tmp_path):
    civil_tree(tmp_path)
    s = splits("civilcomments", root=str(tmp_path), max_len=8)
    train, test = s["train"], s["test"]
    assert train.y.tolist() == [0, 1, 0, 1] and train.a.tolist() == [0, 1, 1, 0]
    assert train.n_groups == 4 and train.g.tolist() == [0, 3, 1, 2]
    names, member = test.eval_groups
    assert len(names) == 16 and member.shape == (2, 16)
    assert names[12:14] == ["black=1, y=non-toxic", "black=1, y=toxic"]
    assert member[0].nonzero().squeeze(1).tolist() == [12] and member[1].nonzero().squeeze(1).tolist() == [7, 13]
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # both predicted non-toxic: one right, one wrong
    metrics = evaluate_logits(logits, test)
    groups = {g["name"]: g for g in metrics["eval_groups"]["groups"]}
    assert groups["black=1, y=non-toxic"]["accuracy"] == 1.0 and groups["black=1, y=toxic"]["accuracy"] == 0.0
    assert groups["male=1, y=toxic"]["accuracy"] is None and metrics["eval_groups"]["worst_group_accuracy"] == 0.0
    assert train.get_x(1).shape == (8,)


def test_overlapping_group_accuracy_by_hand():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])  # correct: yes, no, yes, no
    member = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    out = overlapping_group_accuracy(logits, y, member, ["a", "b", "c"])
    assert [g["accuracy"] for g in out["groups"]] == pytest.approx([1 / 3, 2 / 3, None][:2] + [None])
    assert [g["n"] for g in out["groups"]] == [3, 3, 0] and out["worst_group_accuracy"] == pytest.approx(1 / 3)


# --- BAR and NICO ---------------------------------------------------------------------------------------
def test_bar_classes_from_file_names_and_validation_carve_out(tmp_path):
    classes = ["climbing", "diving", "fishing", "racing", "throwing", "pole vaulting"]
    meta = {}
    for split, n in (("train", 5), ("test", 2)):
        for c in classes:
            for i in range(n):
                image(tmp_path / "BAR" / split / f"{c}_{split}{i}.jpg")
                meta[f"{c}_{split}{i}"] = {"cls": c, "train": split == "train"}
    (tmp_path / "BAR" / "metadata.json").write_text(json.dumps(meta))
    s = splits("bar", root=str(tmp_path), image_size=16)
    assert [len(s[k]) for k in ("train", "val", "test")] == [24, 6, 12]
    assert not s["train"].has_attributes and s["test"].n_groups == 6
    assert s["test"].y.bincount().tolist() == [2] * 6
    assert classes.index("pole vaulting") in s["train"].y.tolist() + s["val"].y.tolist()
    assert {p.name for p in s["train"].paths}.isdisjoint(p.name for p in s["val"].paths)
    from_test = splits("bar", root=str(tmp_path), val_from="test", val_fraction=0.5, image_size=16)
    assert [len(from_test[k]) for k in ("train", "val", "test")] == [30, 6, 6]
    image(tmp_path / "BAR" / "train" / "skiing_1.jpg")
    with pytest.raises(UserError, match="skiing_1.jpg"):
        splits("bar", root=str(tmp_path / "BAR"))


def test_nico_contexts_held_out_and_long_tail(tmp_path):
    counts = {"on snow": 6, "in water": 4, "on grass": 3, "at home": 2}
    for cls in ("dog", "cat"):
        for ctx, n in counts.items():
            for i in range(n):
                image(tmp_path / "NICO" / "Animal" / cls / ctx / f"{i}.jpg")
    s = splits("nico", root=str(tmp_path), image_size=16, val_fraction=0.25)
    contexts = s["train"].attribute_names
    assert contexts == ["at home", "in water", "on grass", "on snow"]
    test_ctx = {contexts[i] for i in s["test"].a.tolist()}
    assert test_ctx == {"on grass", "at home"}  # the two rarest contexts of each class
    assert len(s["train"]) + len(s["val"]) == 2 * (6 + 4) and len(s["test"]) == 2 * (3 + 2)
    assert s["train"].class_names == ["cat", "dog"]
    tail = splits("nico", root=str(tmp_path), image_size=16, imbalance=0.5, test_contexts=["in water"])
    assert {contexts[i] for i in tail["test"].a.tolist()} == {"in water"}
    assert len(tail["train"]) + len(tail["val"]) == 2 * (6 + round(3 * 0.5 ** 0.5) + round(2 * 0.5))
    with pytest.raises(UserError, match=r"unknown test context.*'on the moon'.*on snow"):
        splits("nico", root=str(tmp_path), test_contexts=["on the moon"])


# --- Generic CSV ----------------------------------------------------------------------------------------
def test_csv_images_with_subpopbench_columns(tmp_path):
    for i in range(6):
        image(tmp_path / "imgs" / f"{i}.png")
    rows = ["id,filename,split,y,a"] + [f"{i},imgs/{i}.png,{i % 3},{i % 2},{(i // 2) % 2}" for i in range(6)]
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    s = splits("csv", root=str(tmp_path), image_size=16)
    assert s["train"].y.tolist() == [0, 1] and s["train"].a.tolist() == [0, 1]
    assert s["val"].get_x(0).shape == (3, 16, 16)
    with pytest.raises(UserError, match=r"split values '0', 'dev'; expected the codes .* or the names train/val/test"):
        (tmp_path / "m2.csv").write_text("id,filename,split,y,a\n0,imgs/0.png,dev,0,0\n1,imgs/1.png,0,0,0\n")
        splits("csv", root=str(tmp_path), file="m2.csv")
    named = ["id,filename,split,y,a"] + [f"{i},imgs/{i}.png,{('Train', 'VAL', 'test')[i % 3]},{i % 2},{(i // 2) % 2}"
                                         for i in range(6)]
    (tmp_path / "m3.csv").write_text("\n".join(named) + "\n")
    by_name = splits("csv", root=str(tmp_path), file="m3.csv", image_size=16)
    assert {k: v.y.tolist() for k, v in by_name.items()} == {k: v.y.tolist() for k, v in s.items()}


def test_csv_text_with_string_labels_and_custom_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label,topic,part\ngood film,pos,movie,tr\nbad book,neg,book,tr\n"
                    "good book,pos,book,va\nbad film,neg,movie,te\n")
    s = splits("csv", root=str(path), modality="text", input_column="text", label_column="label",
               attribute_column="topic", split_column="part", split_codes={"train": "tr", "val": "va", "test": "te"},
               max_len=6)
    assert s["train"].class_names == ["neg", "pos"] and s["train"].y.tolist() == [1, 0]
    assert s["train"].attribute_names == ["book", "movie"] and s["test"].g.tolist() == [1]
    assert s["val"].info["modality"] == "text" and s["val"].get_x(0).tolist()[0] == 1  # [CLS]
    with pytest.raises(UserError, match=r"no column 'txt'.*columns present: text, label, topic, part"):
        splits("csv", root=str(path), modality="text", input_column="txt", label_column="label",
               attribute_column=None, split_column="part")
