"""The benchmark driver: a tiny spec runs, resumes from its log, stamps its result; choice rules by hand;
every shipped spec loads and expands to jobs with unique keys."""

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import run, table
from earlyreadout.experiments.plan import Plan
from earlyreadout.experiments.study import Arm, Study

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

DATA = "colored-digits:n_train=64,n_val=32,n_test=32,size=16"
TINY_SPEC = '''
from earlyreadout.experiments.study import Arm, Study

TRAIN = {"epochs": 1, "batch_size": 16, "eval_batch_size": 64}
STUDY = Study(
    name="tiny",
    about="a tiny study for the driver's test",
    data=("colored-digits:n_train=64,n_val=32,n_test=32,size=16",),
    seeds=(1,),
    key="{arm}/{setting}/seed{seed}",
    workers=1,
    arms={
        "erm": Arm("erm", train=TRAIN, model={"name": "small-cnn", "width": 4}),
        "erm-lr": Arm("erm", train=TRAIN, model={"name": "small-cnn", "width": 4},
                      candidates={"slow": {"lr": 0.001}, "fast": {"lr": 0.05}}),
    },
)
'''


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def untimed(value):
    """`value` without its measured times (keys ending in `time_s`), which differ between two trainings."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if not k.endswith("time_s")}
    return [untimed(v) for v in value] if isinstance(value, list) else value


def test_tiny_spec_runs_resumes_from_its_log_and_stamps_its_result(tmp_path):
    spec = tmp_path / "tiny.py"
    spec.write_text(TINY_SPEC)
    results = tmp_path / "results"
    run.main([str(spec), "--results", str(results)])
    log = results / "tiny_runs.jsonl"
    keys = [json.loads(line)["key"] for line in lines(log)]
    assert sorted(keys[:3]) == sorted(["erm/None/seed1", "erm-lr/slow/seed0", "erm-lr/fast/seed0"])
    assert {json.loads(line)["device"] for line in lines(log)} == {"cpu"}
    document = json.loads((results / "tiny.json").read_text())
    assert set(document) == {"study", "command", "made_by", "spec", "results"}
    assert document["command"] == f"python -m benchmarks.run {spec} --results {results}"
    assert len(document["made_by"]["commit"]) == 40 and isinstance(document["made_by"]["dirty"], bool)
    assert {"torch", "earlyreadout", "numpy", "python"} <= set(document["made_by"]["versions"])
    assert document["spec"]["arms"]["erm-lr"]["candidates"] == {"slow": {"lr": 0.001}, "fast": {"lr": 0.05}}
    cell = document["results"][DATA]["worst_group"]
    chosen = cell["erm-lr"]["chosen"]["each"]
    best = max(cell["erm-lr"]["candidates"], key=lambda c: c["val_worst_group"]["mean"])
    assert chosen["name"] == best["name"]
    assert keys[3] == f"erm-lr/{chosen['name']}/seed1" and len(keys) == 4
    assert cell["erm"]["seeds"] == [1] and cell["erm"]["test_worst_group"]["std"] == 0.0

    kept = lines(log)
    log.write_text("\n".join(kept[1:]) + "\n")  # as if the first job had been cut short
    with pytest.raises(SystemExit, match=json.loads(kept[0])["key"]):
        run.main([str(spec), "--results", str(results), "--no-train"])
    run.main([str(spec), "--results", str(results)])
    assert lines(log)[:3] == kept[1:] and len(lines(log)) == 4  # only the missing job trained again
    run.main([str(spec), "--results", str(results), "--no-train"])  # all logged: regenerates, trains nothing
    again = json.loads((results / "tiny.json").read_text())["results"]
    assert untimed(again[DATA]["worst_group"]) == untimed(cell)  # the retrained job's clock alone moved


def fake_rows(plan: Plan, val: dict[tuple[str, str], float]) -> dict[str, dict]:
    """Logged rows of every search job, with validation worst-group accuracy val[dataset, candidate]."""
    return {job.key: {"key": job.key, "val_worst_group": val[job.data, str(job.hp["lr"])]}
            for job in plan.searches()}


def test_choice_rules_by_hand():
    a, b, c = "colored-digits", "dominoes", "spurious-text"
    arm = Arm("erm", candidates={"0.1": {"lr": 0.1}, "0.2": {"lr": 0.2}})
    study = Study("s", "", (a, b, c), {"m": arm}, choose=("each", "pooled", "leave-one-out"),
                  key="{data}/{setting}/seed{seed}")
    plan = Plan(study, run.runs_of(study))
    val = {(a, "0.1"): 0.9, (a, "0.2"): 0.1, (b, "0.1"): 0.2, (b, "0.2"): 0.5, (c, "0.1"): 0.2, (c, "0.2"): 0.5}
    chosen = plan.chosen(fake_rows(plan, val))
    assert [chosen["m", d, "worst_group", "each"] for d in (a, b, c)] == ["0.1", "0.2", "0.2"]
    assert {chosen["m", d, "worst_group", "pooled"] for d in (a, b, c)} == {"0.1"}  # 1.3 / 3 over 1.1 / 3
    assert [chosen["m", d, "worst_group", "leave-one-out"] for d in (a, b, c)] == ["0.2", "0.1", "0.1"]


def test_picks_choose_among_whole_arms_by_hand():
    a, b, c = "colored-digits", "dominoes", "spurious-text"
    study = Study("s", "", (a, b, c), {"x": Arm("erm"), "y": Arm("jtt")}, seeds=(1,),
                  choose=("each", "pooled", "leave-one-out"), key="{data}/{arm}/seed{seed}",
                  picks={"best": ("x", "y")})
    val = {(a, "x"): 0.9, (a, "y"): 0.1, (b, "x"): 0.2, (b, "y"): 0.5, (c, "x"): 0.2, (c, "y"): 0.5}
    rows = {f"{d}/{n}/seed1": {"key": f"{d}/{n}/seed1", "val_worst_group": v, "test_worst_group": v / 2}
            for (d, n), v in val.items()}
    picked = Plan(study, run.runs_of(study)).picked(rows)
    assert [picked["best", d, "worst_group", "each"] for d in (a, b, c)] == ["x", "y", "y"]
    assert {picked["best", d, "worst_group", "pooled"] for d in (a, b, c)} == {"x"}  # 1.3 / 3 over 1.1 / 3
    assert [picked["best", d, "worst_group", "leave-one-out"] for d in (a, b, c)] == ["y", "x", "x"]
    entry = Plan(study, run.runs_of(study)).results(rows)[a]["worst_group"]["best"]
    assert entry["pick"] == ["x", "y"] and entry["chosen"]["leave-one-out"]["name"] == "y"
    assert entry["chosen"]["leave-one-out"]["test_worst_group"]["mean"] == 0.05
    with pytest.raises(ValueError, match="pick 'best': names no arm \\('z'\\)"):
        Study("s", "", (a,), {"x": Arm("erm")}, picks={"best": ("x", "z")})


def test_time_relative_to_erm_only_between_runs_on_one_device():
    study = Study("s", "", ("dominoes",), {"erm": Arm("erm"), "jtt": Arm("jtt", time_relative_to="erm")},
                  seeds=(1, 2), key="{arm}/seed{seed}")
    plan = Plan(study, run.runs_of(study))

    def rows(jtt_devices: tuple[str, str]) -> dict[str, dict]:
        out = {}
        for seed, device in zip((1, 2), jtt_devices):
            for arm, time_s in (("erm", 10.0), ("jtt", 30.0 * seed)):
                row = {"key": f"{arm}/seed{seed}", "test_worst_group": 0.5, "train_time_s": time_s}
                out[row["key"]] = {**row, "device": device} if arm == "jtt" and device != "cpu" else row
        return out

    same = plan.described(rows(("cpu", "cpu")), "jtt", "dominoes", "worst_group")
    assert same["time_over_erm"]["values"] == [3.0, 6.0] and "devices" not in same
    mixed = plan.described(rows(("cpu", "cuda")), "jtt", "dominoes", "worst_group")
    assert "time_over_erm" not in mixed and mixed["devices"] == ["cpu", "cuda"]


def test_unknown_rule_or_arm_and_keys_that_collide_are_refused_naming_them():
    with pytest.raises(ValueError, match="unknown choice rule 'best'.*refit names no arm \\('ermm'\\)"):
        Study("s", "", ("dominoes",), {"m": Arm("dfr", refit="ermm")}, choose=("best",))
    with pytest.raises(ValueError, match="unknown dataset 'dominos' \\(did you mean 'dominoes'.*"
                                         "unknown method 'jt' \\(did you mean 'jtt'"):
        Study("s", "", ("dominos",), {"m": Arm("jt")})
    with pytest.raises(ValueError, match="refit 'erm' must keep its runs"):
        Study("s", "", ("dominoes",), {"erm": Arm("erm"), "dfr": Arm("dfr", refit="erm")})
    with pytest.raises(ValueError, match="arm 'm': its search key template has no {setting}"):
        Study("s", "", ("dominoes",), {"m": Arm("erm", candidates=[{"lr": 0.1}, {"lr": 0.2}])})


@pytest.mark.parametrize("spec", sorted(p.stem for p in (BENCHMARKS / "specs").glob("*.py")))
def test_shipped_specs_load_with_unique_job_keys(spec):
    study, _ = run.load_study(spec)
    plan = Plan(study, run.runs_of(study))
    jobs = plan.sources() + plan.searches()  # an arm others read is in both stages
    by_key = {j.key: j for j in jobs}
    assert all(by_key[j.key] == j for j in jobs) and jobs
    assert study.spec()["name"] == spec


@pytest.mark.parametrize("spec", sorted(p.stem for p in (BENCHMARKS / "specs").glob("*.py")
                                        if (BENCHMARKS / "results" / f"{p.stem}.json").is_file()))
def test_committed_results_regenerate_from_their_logs_without_training(spec, tmp_path):
    study, _ = run.load_study(spec)
    for log in {study.log_of(arm) for arm in study.arms.values()}:
        shutil.copy(BENCHMARKS / "results" / log, tmp_path / log)
    regenerated = run.run_study(study, tmp_path, train=False)
    committed = json.loads((BENCHMARKS / "results" / f"{spec}.json").read_text())
    assert committed["command"] == f"python -m benchmarks.run benchmarks/specs/{spec}.py"
    assert json.loads(json.dumps(regenerated["results"])) == committed["results"]


def test_table_prints_mean_and_std_per_arm_and_dataset_and_the_chosen_name():
    entry = {"test_worst_group": {"mean": 0.5, "std": 0.25}}
    picked = {"pick": ["x", "y"], "chosen": {"leave-one-out": {"name": "y", **entry}}}
    result = {"results": {"a": {"worst_group": {"erm": entry, "best": picked}}, "b": {"worst_group": {}}}}
    assert table.tables(result, "test_worst_group", "leave-one-out").splitlines() == [
        "selected by worst_group: test_worst_group", "", "| | a | b |", "|---|---|---|",
        "| erm | 0.500 ± 0.250 |  |", "| best | 0.500 ± 0.250 (y) |  |"]
    assert "| best |" not in table.tables(result, "test_worst_group", "each")  # no such choice: no row
