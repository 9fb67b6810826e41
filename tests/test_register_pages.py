"""`register` sees every trial (page after page of a real sqlite MLflow store) and picks what the report picks."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from reports.source.extract import load_study
from study.core.vocab import GROUP_TAG as GROUP
from study.core.vocab import PARENT_TAG as PARENT
from study.core.vocab import ROLE_TAG as ROLE
from study.core.vocab import STATUS_TAG as STATUS
from study.core.vocab import TRIAL_ID_TAG as TRIAL_ID
from study.serving.registry import best_pick
from study.serving.registry_runs import setting_info, trial_runs

PAGE = 7
# 10 settings x 3 seeds = 30 trials; s0 has the best seed-mean and is logged first, so the default
# newest-first order puts it on the last page; s9 holds a lucky seed; a degenerate trial tops them all.
SETTINGS = {f"s{j}": [0.70 + 0.01 * j, 0.71 + 0.01 * j, 0.69 + 0.01 * j] for j in range(1, 10)}
SETTINGS["s0"] = [0.86, 0.87, 0.85]
SETTINGS["s9"] = [0.60, 0.95, 0.62]


def _study(uri: str, name: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(uri)
    exp = client.create_experiment(name)
    parent = client.create_run(exp, start_time=1, tags={ROLE: "study", "lamp.objective_metric": "auroc"})
    order = ["s0", *[f"s{j}" for j in range(1, 10)]]
    t = 10
    for g in order:
        for seed, value in enumerate(SETTINGS[g]):
            t += 1
            status = "degenerate" if (g, seed) == ("s5", 0) else "finished"
            value = 0.99 if status == "degenerate" else value
            run = client.create_run(
                exp,
                start_time=t,
                tags={
                    PARENT: parent.info.run_id,
                    ROLE: "trial",
                    STATUS: status,
                    TRIAL_ID: f"{g}_{seed}",
                    GROUP: g,
                },
            )
            client.log_batch(
                run.info.run_id,
                metrics=[Metric("val_auroc", value, t, 0), Metric("auroc", value - 0.01, t, 0)],
                params=[Param("factor", g[1:]), Param("seed", str(seed)), Param("amplification", "exp")],
                tags=[RunTag("mlflow.parentRunId", parent.info.run_id)],
            )
            client.set_terminated(run.info.run_id)
    return client, parent.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, MlflowClient, str]:
    uri = f"sqlite:///{Path(tmp_path_factory.mktemp('pages')) / 'mlflow.db'}"
    client, parent_id = _study(uri, "paged")
    return uri, client, parent_id


def test_register_reads_every_page_and_picks_the_best_setting(store: tuple[str, MlflowClient, str]) -> None:
    uri, client, parent_id = store
    exp = client.get_experiment_by_name("paged").experiment_id
    assert len(trial_runs(client, exp, parent_id, page_size=PAGE)) == 30
    first_page = client.search_runs([exp], filter_string=f"tags.`{PARENT}` = '{parent_id}'", max_results=PAGE)
    assert "s0" not in {r.data.tags[GROUP] for r in first_page}  # one page would never see the best setting
    pick = best_pick(client, "paged", None, None, page_size=PAGE)
    assert pick.metric == "val_auroc" and pick.setting is not None
    assert pick.run.data.tags[TRIAL_ID] == "s0_1"  # the best seed of the best seed-mean, not s9's 0.95
    assert pick.setting.n_settings == 10 and pick.setting.mean == pytest.approx(0.86)
    report = load_study("paged", tracking_uri=uri)
    assert report.best()["run_id"] == pick.run.info.run_id  # register and the report agree
    assert report.best_setting() == pick.setting


def test_register_says_when_the_top_settings_are_not_distinguishable(
    store: tuple[str, MlflowClient, str],
) -> None:
    _, client, _ = store
    pick = best_pick(client, "paged", None, None, page_size=PAGE)
    info = setting_info(pick)
    # s0 (0.85-0.87) against s9 (0.60, 0.95, 0.62): three seeds cannot separate them
    assert info["distinguishable"] is False and info["n_not_distinguishable"] >= 1
    assert "NOT distinguishable" in info["note"] and info["n_seeds"] == 3
    assert "exp λ=9 lr=None" in info["note"]  # s9, named by its params
    allowed = best_pick(client, "paged", None, None, allow=("degenerate",), page_size=PAGE)
    assert allowed.setting is not None and allowed.setting.n_settings == 10  # s5's degenerate seed joins s5
