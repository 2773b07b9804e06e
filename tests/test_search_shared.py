"""Search workers as separate processes sharing one study on a real PostgreSQL server, or on a journal file:
the trial total holds, no trial runs twice, a killed worker's trial is retried once from its checkpoint,
and `--seeds` re-runs the best config."""

import json
import signal
import time
from pathlib import Path

import optuna
import pytest
from tests import postgres

from earlyreadout.errors import UserError
from earlyreadout.search import search
from test_search import TINY, worker, write_config

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install 'psycopg[binary]'")
    try:
        with postgres.server() as url:
            yield url
    except postgres.Unavailable as e:
        pytest.skip(f"no PostgreSQL server can be started here: {e}")


def finish(procs):
    for p in procs:
        _, err = p.communicate(timeout=170)
        assert p.returncode == 0, err[-2000:]


def epochs(run_dir):
    return [json.loads(r)["epoch"] for r in (run_dir / "log.jsonl").read_text().splitlines()]


def assert_each_trial_ran_once(trials, target, workers, n_epochs=1):
    """The study holds `target` finished trials (up to one extra per other worker), each in its own folder,
    trained once: its log has each epoch once."""
    finished = [t for t in trials if t.state in FINISHED]
    assert target <= len(finished) <= target + workers - 1
    assert len({t.number for t in trials}) == len(trials)
    folders = [t.user_attrs["run_dir"] for t in finished]
    assert len(set(folders)) == len(folders)
    assert all(epochs(Path(folder)) == list(range(n_epochs)) for folder in folders)


@pytest.mark.slow
def test_two_workers_and_the_seed_reruns_share_a_postgresql_study(tmp_path, postgres_url):
    config = write_config(tmp_path)
    shared = ["--storage", postgres_url, "--study", "pg-two"]
    finish([worker(config, 3, *shared), worker(config, 3, *shared)])
    out = tmp_path / "search"
    trials = optuna.load_study(study_name="pg-two", storage=postgres_url).trials
    assert_each_trial_ran_once(trials, 3, workers=2)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    finish([worker(config, 3, *shared, "--seeds", "2")])  # after the search: no new trial, two seed runs
    again = optuna.load_study(study_name="pg-two", storage=postgres_url).trials
    assert len(again) == len(trials)
    summary = json.loads((out / "summary.json").read_text())
    best = max(trials, key=lambda t: t.value)
    assert summary["best_trial"] == best.number and summary["params"] == best.params and summary["seeds"] == [1, 2]
    assert all((out / "best" / f"seed{seed}" / "done").exists() for seed in (1, 2))


@pytest.mark.slow
def test_a_killed_workers_trial_is_retried_once_by_the_others(tmp_path, postgres_url):
    config = write_config(tmp_path, data={**TINY["data"], "n_train": 512}, train={**TINY["train"], "epochs": 3})
    out = tmp_path / "search"
    shared = ["--storage", postgres_url, "--study", "pg-kill"]
    first = worker(config, 3, *shared, "--heartbeat", "2")
    checkpoint = out / "trials" / "0" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.exists() and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # mid trial 0, after its first epoch: its heartbeat stops
    first.wait()
    assert not (out / "trials" / "0" / "done").exists(), "trial 0 finished before it could be killed"
    time.sleep(4.5)  # past the others' grace period (twice their heartbeat)
    finish([worker(config, 3, *shared, "--heartbeat", "2"), worker(config, 3, *shared, "--heartbeat", "2")])
    trials = optuna.load_study(study_name="pg-kill", storage=postgres_url).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in trials if t.user_attrs.get("resume_of") == 0]  # both saw it stale; one queued it
    assert retry.params == trials[0].params and retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs["run_dir"] == str(out / "trials" / "0")  # continued from the killed checkpoint
    assert epochs(out / "trials" / "0") == [0, 1, 2]
    assert_each_trial_ran_once([t for t in trials if t.number != 0], 3, workers=2, n_epochs=3)


@pytest.mark.slow
def test_two_workers_share_a_journal_file(tmp_path):
    config = write_config(tmp_path)
    journal = tmp_path / "studies.journal"
    shared = ["--storage", f"journal:{journal}"]
    finish([worker(config, 3, *shared), worker(config, 3, *shared)])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="search", storage=storage).trials
    assert_each_trial_ran_once(trials, 3, workers=2)
    summary = search(str(config), [], f"journal:{journal}", options={"trials": 3, "seeds": 1})
    assert summary["seeds"] == [1] and (tmp_path / "search" / "best" / "seed1" / "done").exists()


def test_a_journal_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="folder .* does not exist; create it"):
        search(str(write_config(tmp_path)), [], f"journal:{tmp_path / 'nowhere' / 'study.journal'}")
