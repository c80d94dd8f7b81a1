from pathlib import Path

import pytest

from tracecore_perf.errors import UsageError
from tracecore_perf.run.scenario import DEFAULT_SCENARIO, load_scenario, plan


def test_default_scenario_is_the_seed_guides_four_rows():
    assert [(r.agent, r.task_ref, r.seed) for r in DEFAULT_SCENARIO] == [
        ("agents/toy_agent.py", "filesystem_hidden_config@1", 42),
        ("agents/rate_limit_agent.py", "rate_limited_api@1", 11),
        ("agents/chain_agent.py", "rate_limited_chain@1", 7),
        ("agents/ops_triage_agent.py", "log_alert_triage@1", 21),
    ]


def test_plan_cycles_rows_and_adds_the_episode_index_to_the_seed():
    jobs = list(plan(list(DEFAULT_SCENARIO), 10))
    assert [j.episode_index for j in jobs] == list(range(10))
    assert [j.scenario_row for j in jobs] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert jobs[5].agent == "agents/rate_limit_agent.py"
    assert [j.seed for j in jobs] == [42, 12, 9, 24, 46, 16, 13, 28, 50, 20]


def test_plan_skips_episodes_a_resumed_run_already_has():
    jobs = list(plan(list(DEFAULT_SCENARIO), 6, skip={0, 2, 5}))
    assert [(j.episode_index, j.seed) for j in jobs] == [(1, 12), (3, 24), (4, 46)]


def test_toml_and_json_scenarios_read_the_same(tmp_path: Path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[[rows]]\nagent = "agents/toy_agent.py"\ntask_ref = "filesystem_hidden_config@1"\nseed = 3\n'
        '[[rows]]\nagent = "agents/chain_agent.py"\ntask_ref = "rate_limited_chain@1"\n'
    )
    js = tmp_path / "s.json"
    js.write_text(
        '[{"agent": "agents/toy_agent.py", "task_ref": "filesystem_hidden_config@1", "seed": 3},'
        ' {"agent": "agents/chain_agent.py", "task_ref": "rate_limited_chain@1"}]'
    )
    assert load_scenario(toml) == load_scenario(js)
    assert load_scenario(js)[1].seed == 0


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (None, ".json", "scenario file not found"),
        ("{not json", ".json", "not valid JSON"),
        ("rows = [", ".toml", "not valid TOML"),
        ("[]", ".json", "has no rows"),
        ('{"other": 1}', ".json", "has no 'rows' list"),
        ('[{"task_ref": "dice_game@1"}]', ".json", "row 1 has no 'agent'"),
        ('[{"agent": "agents/toy_agent.py", "task_ref": "x@1"}, {"agent": "a.py"}]', ".json", "row 2 has no 'task_ref'"),
        ('[{"agent": "a.py", "task_ref": "x@1", "seed": "7"}]', ".json", "non-integer seed"),
        ('[{"agent": "a.py", "task_ref": "x@1", "seed": 1.5}]', ".json", "non-integer seed"),
        ('[{"agent": "a.py", "task_ref": "x@1", "seed": true}]', ".json", "non-integer seed"),
        ('[{"agent": "a.py", "task_ref": "x@1", "colour": "red"}]', ".json", "row 1"),
    ],
)
def test_bad_scenario_files_name_the_problem(tmp_path: Path, content, suffix, message):
    path = tmp_path / f"scenario{suffix}"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_scenario(path)
