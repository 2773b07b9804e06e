"""`data check` on small trees in each release's layout: a complete tree passes, and every planted fault
(a missing file, a truncated image, a split short of rows, a group missing, a broken text file) is reported
in one line naming it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from earlyreadout.cli import main
from earlyreadout.data.check import check_dataset
from earlyreadout.data.releases import RELEASES, Release, groups_of
from test_datasets_real import ATTRS, celeba_values, civil_tree, image, waterbirds_tree

BIRDS, PLACES = ["landbird", "waterbird"], ["land", "water"]
BLOND, MALE = ["not Blond_Hair", "Blond_Hair"], ["not Male", "Male"]
NLI, NEGATION = ["contradiction", "entailment", "neutral"], ["no negation", "negation"]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def drop_rows(path: Path, *needles: str) -> None:
    """Remove the lines of a text table that contain any of `needles`."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if not any(n in line for n in needles)) + "\n")


def assert_found_exactly(problems: list[str], expected: list[str]) -> None:
    """Every expected pattern matches some line, and every line is explained by some pattern."""
    for pattern in expected:
        assert any(re.search(pattern, line) for line in problems), (pattern, problems)
    for line in problems:
        assert any(re.search(pattern, line) for pattern in expected), (line, expected)


def test_waterbirds_every_planted_fault_is_found(tmp_path):
    folder = waterbirds_tree(tmp_path)
    small = Release(rows={"train": 4, "val": 2, "test": 2}, source="the test tree",
                    groups={"train": groups_of(BIRDS, PLACES, [1, 1, 1, 1]),
                            "val": groups_of(BIRDS, PLACES, [1, 0, 0, 1]),
                            "test": groups_of(BIRDS, PLACES, [0, 1, 1, 0])})
    complete = check_dataset("waterbirds", str(tmp_path), small, workers=2)
    assert complete.problems == [] and complete.images == 8
    assert complete.ok_line().startswith("waterbirds: OK (4 train / 2 val / 2 test rows, 8 images decoded; counts")
    (folder / "045.Northern_Fulmar" / "bird_0.jpg").unlink()
    truncate(folder / "001.Black_footed_Albatross" / "bird_2.jpg")
    drop_rows(folder / "metadata.csv", "bird_4.jpg", "bird_7.jpg")  # val short of a row; test loses a group
    problems = check_dataset("waterbirds", str(tmp_path), small, workers=2).problems
    assert_found_exactly(problems, [
        r"image '.*bird_0\.jpg' listed in the metadata does not exist",
        r"cannot read image '.*bird_2\.jpg' \(.*truncated or damaged\?\)",
        r"split 'val' has 1 rows; the release has 2 \(1 missing\)",
        r"group 'landbird, land' of split 'val' is missing; the release has 1",
        r"split 'test' has 1 rows; the release has 2 \(1 missing\)",
        r"group 'waterbird, land' of split 'test' is missing; the release has 1",
    ])


def test_celeba_missing_and_truncated_images_and_a_missing_group(tmp_path):
    values = celeba_values()
    for name in values:
        image(tmp_path / "img_align_celeba" / name)
    attr = ["image_id," + ",".join(ATTRS)] + [f"{n}," + ",".join(map(str, v)) for n, (v, _) in values.items()]
    (tmp_path / "list_attr_celeba.csv").write_text("\n".join(attr) + "\n")
    part = ["image_id,partition"] + [f"{n},{p}" for n, (_, p) in values.items()]
    (tmp_path / "list_eval_partition.csv").write_text("\n".join(part) + "\n")
    small = Release(rows={"train": 3, "val": 3, "test": 3}, source="the test tree",
                    groups={"train": groups_of(BLOND, MALE, [0, 2, 1, 0]), "val": groups_of(BLOND, MALE, [0, 2, 1, 0]),
                            "test": groups_of(BLOND, MALE, [0, 1, 2, 0])})
    assert check_dataset("celeba", str(tmp_path), small, workers=2).problems == []
    (tmp_path / "img_align_celeba" / "000004.jpg").unlink()
    truncate(tmp_path / "img_align_celeba" / "000003.jpg")
    drop_rows(tmp_path / "list_attr_celeba.csv", "000005.jpg")
    problems = check_dataset("celeba", str(tmp_path), small, workers=2).problems
    assert_found_exactly(problems, [
        r"image '.*000004\.jpg' listed in the metadata does not exist",
        r"'.*000003\.jpg'.*(truncated|not a readable image)",
        r"split 'test' has 2 rows; the release has 3 \(1 missing\)",
        r"group 'not Blond_Hair, Male' of split 'test' is missing; the release has 1",
    ])


def multinli_tree(root: Path) -> None:
    records = {
        "multinli_1.0_train.jsonl": [("A man sleeps.", "Nobody sleeps.", "contradiction"),
                                     ("A dog runs.", "An animal moves.", "entailment")],
        "multinli_1.0_dev_matched.jsonl": [("Cats purr.", "Cats never purr!", "contradiction")],
        "multinli_1.0_dev_mismatched.jsonl": [("She sings.", "She sings well.", "neutral")],
    }
    for name, rows in records.items():
        (root / name).write_text("".join(
            json.dumps({"sentence1": p, "sentence2": h, "gold_label": g}) + "\n" for p, h, g in rows))
    (root / "metadata_random.csv").write_text(
        ",gold_label,sentence2_has_negation,split\n0,0,1,0\n1,1,0,0\n2,0,1,1\n3,2,0,2\n")


def test_multinli_a_split_short_of_rows_and_a_broken_text_file(tmp_path):
    multinli_tree(tmp_path)
    small = Release(rows={"train": 2, "val": 1, "test": 1}, source="the test tree",
                    groups={"train": groups_of(NLI, NEGATION, [0, 1, 1, 0, 0, 0])})
    result = check_dataset("multinli", str(tmp_path), small)
    assert result.problems == [] and result.images == 0
    drop_rows(tmp_path / "metadata_random.csv", "1,1,0,0")
    assert_found_exactly(check_dataset("multinli", str(tmp_path), small).problems, [
        r"split 'train' has 1 rows; the release has 2 \(1 missing\)",
        r"group 'entailment, no negation' of split 'train' is missing; the release has 1",
    ])
    with (tmp_path / "multinli_1.0_dev_matched.jsonl").open("a") as f:
        f.write('{"sentence1": "cut off\n')
    (problem,) = check_dataset("multinli", str(tmp_path), small).problems
    assert re.search(r"line 2 of '.*dev_matched\.jsonl' is not a MultiNLI record", problem)


def test_civilcomments_a_split_short_of_rows(tmp_path):
    civil_tree(tmp_path)
    small = Release(rows={"train": 4, "val": 2, "test": 2}, source="the test tree")
    assert check_dataset("civilcomments", str(tmp_path), small).problems == []
    drop_rows(tmp_path / "civilcomments_v1.0" / "all_data_with_identities.csv", '"go away"')
    assert check_dataset("civilcomments", str(tmp_path), small).problems == [
        "civilcomments: split 'val' has 1 rows; the release has 2 (1 missing)"]


def test_bar_a_class_missing_and_a_truncated_image_without_release_counts(tmp_path):
    classes = ["climbing", "diving", "fishing", "racing", "throwing", "pole vaulting"]
    for split, n in (("train", 3), ("test", 1)):
        for c in classes:
            for i in range(n):
                image(tmp_path / "BAR" / split / f"{c}_{split}{i}.jpg")
    result = check_dataset("bar", str(tmp_path), None, workers=2)
    assert result.problems == [] and result.images == 24
    assert "counts not checked: no published counts" in result.ok_line()
    for i in range(3):
        (tmp_path / "BAR" / "train" / f"fishing_train{i}.jpg").unlink()
    truncate(tmp_path / "BAR" / "test" / "diving_test0.jpg")
    assert_found_exactly(check_dataset("bar", str(tmp_path), None, workers=2).problems, [
        r"bar: class 'fishing' has no training examples",
        r"'.*diving_test0\.jpg'.*(truncated|not a readable image)",
    ])


def test_nico_and_csv_report_unreadable_and_missing_files(tmp_path):
    for cls in ("dog", "cat"):
        for ctx in ("on snow", "in water", "at home"):
            for i in range(3):
                image(tmp_path / "nico" / "Animal" / cls / ctx / f"{i}.jpg")
    assert check_dataset("nico", str(tmp_path / "nico"), None, workers=2).problems == []
    (tmp_path / "nico" / "Animal" / "cat" / "on snow" / "1.jpg").write_bytes(b"not an image")
    assert_found_exactly(check_dataset("nico", str(tmp_path / "nico"), None, workers=2).problems,
                         [r"'.*cat/on snow/1\.jpg' is not a readable image"])
    for i in range(6):
        image(tmp_path / "own" / "imgs" / f"{i}.png")
    rows = ["id,filename,split,y,a"] + [f"{i},imgs/{i}.png,{i % 3},{i % 2},{(i // 2) % 2}" for i in range(6)]
    (tmp_path / "own" / "metadata.csv").write_text("\n".join(rows) + "\n")
    assert check_dataset("csv", str(tmp_path / "own"), None).problems == []
    (tmp_path / "own" / "imgs" / "4.png").unlink()
    assert_found_exactly(check_dataset("csv", str(tmp_path / "own"), None).problems,
                         [r"image '.*imgs/4\.png' listed in the metadata does not exist"])


def test_the_command_compares_with_the_published_release_and_exits_2(tmp_path, capsys):
    waterbirds_tree(tmp_path)
    assert main(["data", "check", "--data", "waterbirds", "--data-root", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "waterbirds: split 'train' has 4 rows; the release has 4,795 (4,791 missing)" in out
    assert "waterbirds: group 'waterbird, land' of split 'train' has 1 examples; the release has 56" in out
    assert err.startswith("earlyreadout data: error: ") and len(err.strip().splitlines()) == 1
    assert main(["data", "check", "--data", "waterbirds", "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "does not exist or is not a folder" in capsys.readouterr().out
    assert main(["data", "check", "--data", "csv", "--data-root", str(tmp_path), "data.file=none.csv"]) == 2
    assert re.search(r"csv: missing file '.*none\.csv'", capsys.readouterr().out)


def test_the_command_prints_one_ok_line_for_a_complete_copy(tmp_path, capsys):
    for i in range(3):
        image(tmp_path / "imgs" / f"{i}.png")
    rows = ["id,filename,split,y,a"] + [f"{i},imgs/{i}.png,{i},0,0" for i in range(3)]
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    assert main(["data", "check", "--data", "csv", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [("csv: OK (1 train / 1 val / 1 test rows, 3 images decoded; counts not checked: no published "
                    "counts known for this dataset)")]


def test_release_counts_add_up_to_their_splits():
    for name, release in RELEASES.items():
        for split, groups in release.groups.items():
            assert sum(groups.values()) == release.rows[split], (name, split)
    assert sum(RELEASES["waterbirds"].rows.values()) == 11788
    assert sum(RELEASES["celeba"].rows.values()) == 202599
    assert sum(RELEASES["civilcomments"].rows.values()) == 448000
