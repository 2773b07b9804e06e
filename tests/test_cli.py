import argparse
import os
import subprocess
import sys

import pytest

from earlyreadout.cli import main, overrides_last
from earlyreadout.config import build_config, load_config
from earlyreadout.errors import ConfigError

TINY = ["data.n_train=64", "data.n_val=32", "data.n_test=32", "data.size=16", "model.width=8"]


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("args, message", [
    (["--method", "ermm"], "unknown method 'ermm' (did you mean 'erm'"),
    (["--data", "colored-digit"], "unknown dataset 'colored-digit' (did you mean 'colored-digits', 'colored-mnist'"),
    (["method.lrate=0.1"], "unknown parameter 'lrate' for method 'erm'"),
    (["data.correlation=1.5"], ("the 'correlation' parameter of dataset 'colored-digits' must be a float in the "
                              "range [0, 1]; got 1.5 instead")),
    (["--batch-size", "0"], "the 'batch_size' parameter of train must be an int in the range [1, inf); got 0"),
    (["--resume"], "--resume needs --out"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    code, _, err = run_cli(["train", "--out", str(tmp_path / "r")] + args if "--resume" not in args
                           else ["train"] + args, capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_resume_pointing_at_nothing(capsys, tmp_path):
    code, _, err = run_cli(["train", "--resume", "--out", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "is not a run directory" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_unwritable_output_dir(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, _, err = run_cli(["train", "--out", str(ro / "x")] + TINY, capsys)
    assert code == 2 and "cannot write to output directory" in err


def test_output_dir_under_a_file_is_reported(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    code, _, err = run_cli(["train", "--out", str(tmp_path / "file" / "run")] + TINY, capsys)
    assert code == 2 and "cannot write to output directory" in err


def test_train_yaml_with_overrides_then_refuses_to_overwrite(capsys, tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"method: erm\ndata: {{name: dominoes, size: 8}}\ntrain: {{epochs: 1, batch_size: 16}}\n"
                   f"out: {tmp_path / 'run'}\n")
    code, out, _ = run_cli(["train", "-c", str(exp), "data.n_train=64", "data.n_val=32", "data.n_test=32",
                            "model.width=8"], capsys)
    assert code == 0 and "test worst-group" in out and "dominoes" in out
    saved = (tmp_path / "run" / "metrics.json").read_bytes()
    code, _, err = run_cli(["train", "-c", str(exp)], capsys)
    assert code == 2 and "already holds a run" in err
    assert (tmp_path / "run" / "metrics.json").read_bytes() == saved


def test_module_entry_point_and_list():
    out = subprocess.run([sys.executable, "-m", "earlyreadout", "list", "-v"], check=True, capture_output=True,
                         text=True, env={**os.environ, "CI": "true"}).stdout
    assert "erm" in out and "colored-digits" in out and "small-cnn" in out and "correlation = 0.97" in out


def test_overrides_may_come_before_flags():
    argv = ["train", "method.lr=0.1", "--out", "runs/x", "out=runs/y", "--epochs", "2", "data.n_train=8"]
    assert overrides_last(argv) == ["train", "--out", "runs/x", "--epochs", "2", "method.lr=0.1", "out=runs/y",
                                    "data.n_train=8"]
    assert overrides_last(["report", "runs/a=b"]) == ["report", "runs/a=b"]  # a path is not an override


def test_flags_keep_their_types(capsys, tmp_path, monkeypatch):
    """`--out 10` is a folder named 10 (not the int 10); explicit key=value overrides still win over flags."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["train", "--out", "10", "--epochs", "1", "--device", "cpu", *TINY], capsys)
    assert code == 0, err
    assert (tmp_path / "10" / "done").is_file() and str(tmp_path / "10") in out
    cfg = load_config(None, ["data.root=2025"], {"data.name": "waterbirds", "data.root": "2024", "out": "10"})
    assert cfg.data.settings["root"] == str(tmp_path / "2025") and cfg.out == str(tmp_path / "10")
    assert load_config(None, [], {"data.name": "waterbirds", "data.root": "2024"}).data.settings["root"] == \
        str(tmp_path / "2024")


@pytest.mark.parametrize("out", ["", None, [1]])
def test_out_must_be_a_path(out):
    with pytest.raises(ConfigError, match="'out' parameter of the run config must be a path"):
        build_config({"out": out})


def every_option() -> list[tuple[str, str, str | None]]:
    """(command, flag, help) of every option of every command and sub-command."""
    from earlyreadout.cli import parser

    found = []

    def walk(name: str, p) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(f"{name} {sub_name}".strip(), sub)
            elif not isinstance(action, argparse._HelpAction):
                found.append((name, "/".join(action.option_strings) or action.dest, action.help))

    walk("", parser())
    return found


def test_every_flag_of_every_command_has_help():
    options = every_option()
    assert {"train", "compare", "retrain", "diagnose", "report", "gradcam", "search", "data check"} <= {
        c for c, _, _ in options}
    assert [(c, f) for c, f, h in options if not h or not h.strip()] == []
    helps = {(c, f): h for c, f, h in options}
    assert "train.epochs" in helps[("train", "--epochs")] and "train.seed" in helps[("distill", "--seed")]
    assert "method.lr" in helps[("compare", "--lr")] and "train.batch_size" in helps[("search", "--batch-size")]


def test_a_switch_says_it_turns_its_option_off():
    helps = {(c, f): h for c, f, h in every_option()}
    assert helps[("report", "--no-gradcam")].endswith("on by default; this switch turns it off")


def test_a_wrong_csv_label_column_names_its_option_and_leaves_no_run_directory(capsys, tmp_path):
    (tmp_path / "t.csv").write_text("filename,label,a,split\na cat,1,0,0\na dog,0,1,1\na cow,0,1,2\n")
    out = tmp_path / "runs" / "try1"
    code, _, err = run_cli(["train", "--data", "csv", "--data-root", str(tmp_path / "t.csv"), "data.modality=text",
                            "--model", "bag-of-embeddings", "--epochs", "1", "--device", "cpu", "--out", str(out)],
                           capsys)
    assert code == 2 and err.count("\n") == 1
    assert "has no column 'y' (data.label_column)" in err
    assert "columns present: filename, label, a, split; set data.label_column=COLUMN to one of them" in err
    assert not (tmp_path / "runs").exists()


def test_a_failed_start_keeps_an_output_folder_that_existed(capsys, tmp_path):
    (tmp_path / "t.csv").write_text("filename,y,split\na cat,1,0\na dog,0,1\na cow,0,2\n")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    code, _, err = run_cli(["train", "--data", "csv", "--data-root", str(tmp_path / "t.csv"), "data.modality=text",
                            "--model", "bag-of-embeddings", "--epochs", "1", "--out", str(out)], capsys)
    assert code == 2 and "(data.attribute_column)" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
