"""`lm2 recipe`: phases chained through their checkpoints, shared phases once, finished phases skipped, a stopped
phase resumed exactly, and a recipe that does not fit its runs refused."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lm2.cli import main
from lm2.train import checkpoint as ckpt
from lm2.train import loop
from lm2.train.config import recipe_names, save_config
from lm2.train.recipe import load_recipe, plan, run_plan

PHASES = [
    {"name": "backbone", "shared": True, "set": {"model.kind": "vanilla", "train.steps": 4}},
    {"name": "memory", "set": {"train.steps": 4, "train.seed": 1, "checkpoint.interval": 1, "checkpoint.keep_last": 4,
                               "model.config.memory_layers": 2}},
]


@pytest.fixture()
def recipe_file(lm_config, tmp_path):
    """A two-phase recipe over the small LM config: a shared vanilla backbone, then lm2 and vanilla from it."""
    config = tmp_path / "small.yaml"
    save_config(lm_config(), config)

    def write(phases=PHASES, **keys):
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump({"config": str(config), "kinds": ["lm2", "vanilla"], "phases": phases,
                                        **keys}))
        return path
    return write


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_phases_chain_through_checkpoints_and_a_stopped_phase_resumes_exactly(recipe_file, tmp_path, capsys):
    out = tmp_path / "out"
    runs = plan(load_recipe(recipe_file()), out)
    assert [(r.phase.name, r.kind) for r in runs] == [("backbone", None), ("memory", "lm2"), ("memory", "vanilla")]
    run_plan(runs, progress=False)
    backbone = out / "backbone" / "ckpt-000004"
    for kind in ("lm2", "vanilla"):  # each kind starts from the one shared backbone and reads its tokenizer
        saved = yaml.safe_load((out / kind / "memory" / "ckpt-000004" / ckpt.CONFIG_FILE).read_text())
        assert saved["model"]["kind"] == kind and saved["model"]["init_from"] == str(backbone)
        assert saved["data"]["tokenizer"] == str(backbone) and saved["train"]["seed"] == 1
    lm2_final = weights(out / "lm2" / "memory" / "ckpt-000004")
    assert any(".memory." in k for k in lm2_final) and not any(".memory." in k for k in weights(backbone))
    # The LM2 phase really started from the backbone: at step 0 (memory read at zero) it is the backbone's model.
    theirs = loop.build_model(runs[1].cfg).state_dict()
    assert all(torch.equal(theirs[k], v) for k, v in weights(backbone).items())

    # Rerun: everything finished, nothing trained again.
    stamp = (out / "lm2" / "memory" / "ckpt-000004").stat().st_mtime_ns
    capsys.readouterr()
    run_plan(plan(load_recipe(recipe_file()), out), progress=False)
    assert capsys.readouterr().out.count("skipped") == 3
    assert (out / "lm2" / "memory" / "ckpt-000004").stat().st_mtime_ns == stamp

    # A phase stopped after its step-2 checkpoint resumes to the same weights as the run that was not stopped.
    for name in ("ckpt-000003", "ckpt-000004"):
        shutil.rmtree(out / "lm2" / "memory" / name)
    assert plan(load_recipe(recipe_file()), out)[1].state() == "partial"
    run_plan(plan(load_recipe(recipe_file()), out), progress=False)
    resumed = weights(out / "lm2" / "memory" / "ckpt-000004")
    assert set(resumed) == set(lm2_final) and all(torch.equal(resumed[k], v) for k, v in lm2_final.items())

    # A phase started but without any complete checkpoint says so, and the run there is left as it is.
    for name in ("ckpt-000001", "ckpt-000002", "ckpt-000003", "ckpt-000004"):
        shutil.rmtree(out / "vanilla" / "memory" / name)
    with pytest.raises(ValueError, match="memory \\(vanilla\\) without a complete checkpoint.*delete that folder"):
        run_plan(plan(load_recipe(recipe_file()), out), progress=False)
    assert (out / "vanilla" / "memory" / "metrics.jsonl").is_file()

    # A finished phase trained with other settings is refused, not silently built on.
    with pytest.raises(ValueError, match="trained with another config.*train.seed"):
        run_plan(plan(load_recipe(recipe_file()), out, ["--memory.train.seed", "7"]), progress=False)


def test_a_config_path_is_read_from_the_recipes_folder(recipe_file, tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "small.yaml").rename(tmp_path / "configs" / "small.yaml")
    path = recipe_file()
    path.write_text(path.read_text().replace(str(tmp_path / "small.yaml"), "configs/small.yaml"))
    monkeypatch.chdir(tmp_path / "configs")  # not where the recipe is
    assert load_recipe(path).config == str(tmp_path / "configs" / "small.yaml")


def test_the_command_prints_each_kinds_final_checkpoint_and_token_budget(recipe_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["recipe", str(recipe_file()), "--out-dir", str(out), "--kinds", "lm2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    runs = plan(load_recipe(recipe_file()), out, kinds=["lm2"])
    per_phase = [ckpt.load_trainer_state(r.final_checkpoint)["tokens"] for r in runs]
    assert len(per_phase) == 2 and all(t > 0 for t in per_phase)
    assert f"lm2      {runs[-1].final_checkpoint}  {sum(per_phase):,} tokens" in printed
    assert main(["recipe", str(recipe_file()), "--out-dir", str(out), "--kinds", "lm2", "--no-progress"]) == 0
    assert capsys.readouterr().out.count("skipped") == 2  # finished: the same budget printed, nothing trained


def test_eval_lengths_evaluates_and_compares_each_kind(lm_config, tmp_path, capsys):
    """--eval-lengths: each kind's final checkpoint answers the BABILong test samples into OUT/KIND/eval, and the
    comparison table holds exactly those summaries' accuracies; a recipe that does not train on BABILong is
    refused before any training."""
    import json

    cfg = lm_config(data={"task": "babilong", "babi_tasks": ["qa1"], "segment_length": 16, "bptt_segments": 0,
                          "curriculum": [{"steps": 2, "lengths": ["0k"]}]},
                    train={"steps": 0}, eval={"interval": 0, "samples": 2, "lengths": ["0k"], "max_new_tokens": 2})
    save_config(cfg, tmp_path / "babilong.yaml")
    recipe = tmp_path / "babilong-recipe.yaml"
    recipe.write_text(yaml.safe_dump({"config": str(tmp_path / "babilong.yaml"), "kinds": ["lm2", "vanilla"],
                                      "phases": [{"name": "only", "set": {"model.config.memory_layers": 2}}]}))
    out = tmp_path / "out"
    assert main(["recipe", str(recipe), "--out-dir", str(out), "--eval-lengths", "0k", "--eval-n", "3",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for kind in ("lm2", "vanilla"):
        summary = json.loads((out / kind / "eval" / "summary.json").read_text())
        assert summary["samples"]["qa1"]["0k"] == 3
        assert f"| {kind} | {summary['mean']['0k']:.1f} |" in printed
    assert any(line.startswith("| best constant answer |") for line in printed)
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["recipe", "babilong-bind", "--out-dir", str(tmp_path / "x"), "--eval-lengths", "0k,3q"]) == 2
    assert "3q" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_overrides_reach_every_phase_or_one(recipe_file, tmp_path):
    runs = plan(load_recipe(recipe_file()), tmp_path / "o", ["--train.lr", "1e-3", "--backbone.train.seed", "5"],
                kinds=["lm2"])
    assert [r.kind for r in runs] == [None, "lm2"]
    assert [r.cfg.train.lr for r in runs] == [1e-3, 1e-3]
    assert [r.cfg.train.seed for r in runs] == [5, 1]
    assert "--train.seed 5" in runs[0].command and runs[1].command.startswith("lm2 train ")


def test_per_kind_fields_reach_only_that_kinds_phases_and_a_phase_field_wins(recipe_file, tmp_path):
    """Equal budgets need kind-specific widths (vanilla's MLP wider than LM2's): per_kind sets them in each of that
    kind's phases, never in the shared one or another kind's, and a phase's own field still decides."""
    phases = [PHASES[0], {"name": "memory", "set": {"train.steps": 4, "train.lr": 2e-3}}]
    per_kind = {"vanilla": {"model.config.intermediate_size": 96, "train.lr": 5e-3}}
    runs = plan(load_recipe(recipe_file(phases, per_kind=per_kind)), tmp_path / "o")
    sizes = {r.kind: r.cfg.model.config.get("intermediate_size") for r in runs}
    assert sizes == {None: 64, "lm2": 64, "vanilla": 96}  # 64: the small config's own
    assert [r.cfg.train.lr for r in runs][1:] == [2e-3, 2e-3]  # the phase's lr over vanilla's per_kind lr
    assert "--model.config.intermediate_size 96" in runs[2].command


@pytest.mark.parametrize(("change", "message"), [
    ({"phases": []}, "phases is empty"),
    ({"phases": [PHASES[1], PHASES[0]]}, "shared phases must come before"),
    ({"phases": [{"name": "train", "set": {}}]}, "phase name 'train' is invalid"),
    ({"phases": [PHASES[0], PHASES[0]]}, "phase names repeat"),
    ({"phases": [{"name": "a", "steps": 3}]}, "phase 1 must be a mapping"),
    ({"kinds": ["gpt"]}, "kinds=.*invalid"),
    ({"config": "no-such-config"}, "config file no-such-config does not exist"),
    ({"epochs": 3}, "unknown key"),
    ({"per_kind": {"gpt": {"train.lr": 1e-3}}}, "per_kind=.*invalid: a mapping from a model kind"),
    ({"per_kind": {"vanilla": [1, 2]}}, "per_kind: vanilla must be a mapping of dotted config fields"),
])
def test_a_malformed_recipe_is_refused_in_one_line(recipe_file, change, message):
    values = yaml.safe_load(recipe_file().read_text())
    values.update(change)
    path = recipe_file()
    path.write_text(yaml.safe_dump(values))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_recipe(path)


def test_a_recipe_from_a_base_takes_its_fields_and_phases_and_changes_only_what_it_sets(recipe_file, tmp_path):
    """``base`` + ``from_base``: the derived recipe plans the base's runs field for field, except what it sets."""
    base = recipe_file(per_kind={"vanilla": {"model.config.intermediate_size": 40}},
                       every_phase={"train.batch_size": 3})
    derived = tmp_path / "derived.yaml"
    derived.write_text(yaml.safe_dump({"base": base.name}))  # a file beside it; no phases: the base's
    assert [r.cfg for r in plan(load_recipe(derived), tmp_path / "o")] == [r.cfg for r in plan(load_recipe(base),
                                                                                              tmp_path / "o")]
    derived.write_text(yaml.safe_dump({"base": str(base), "kinds": ["vanilla"], "phases": [
        {"name": "backbone", "from_base": True},
        {"name": "memory", "from_base": True, "set": {"train.seed": 9}}]}))
    old, new = plan(load_recipe(base), tmp_path / "o", kinds=["vanilla"]), plan(load_recipe(derived), tmp_path / "o")
    assert [(r.phase.name, r.kind) for r in new] == [("backbone", None), ("memory", "vanilla")]
    assert new[0].cfg == old[0].cfg
    assert new[1].cfg.train.seed == 9 and old[1].cfg.train.seed == 1
    assert new[1].cfg.model.config["intermediate_size"] == 40 and new[1].cfg.train.batch_size == 3
    old[1].cfg.train.seed = 9
    assert new[1].cfg == old[1].cfg


@pytest.mark.parametrize(("derived", "message"), [
    ({"base": "recipe.yaml", "phases": [{"name": "lengths", "from_base": True}]},
     "phase lengths has from_base, but its base recipe.yaml has backbone, memory"),
    ({"phases": [{"name": "memory", "from_base": True}]}, "phase memory has from_base, but it names no base"),
    ({"base": "derived.yaml"}, "base derived.yaml leads back to derived.yaml.*cannot start from itself"),
    ({"base": "no-such-recipe"}, "derived.yaml: its base: recipe file no-such-recipe does not exist"),
    ({"base": ["recipe.yaml"]}, "base=\\['recipe.yaml'\\] is invalid"),
])
def test_a_bad_base_is_refused_in_one_line(recipe_file, tmp_path, derived, message):
    recipe_file()
    path = tmp_path / "derived.yaml"
    path.write_text(yaml.safe_dump({"config": "babilong-tiny", **derived}))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_recipe(path)


def test_a_base_that_leads_back_through_another_recipe_is_refused(recipe_file, tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"base": "b.yaml"}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"base": "a.yaml"}))
    with pytest.raises(ValueError, match="a.yaml -> b.yaml -> a.yaml.*cannot start from itself"):
        load_recipe(tmp_path / "a.yaml")


def test_bad_phase_values_and_overrides_are_refused_before_any_training(recipe_file, tmp_path, capsys):
    assert main(["recipe", str(recipe_file()), "--out-dir", str(tmp_path / "o"), "--eval-lengths", "0k"]) == 2
    assert "--eval-lengths evaluates on BABILong" in capsys.readouterr().err
    bad = [PHASES[0], {"name": "memory", "set": {"train.lr": -1}}]
    with pytest.raises(ValueError, match="phase memory \\(lm2\\): .*train.lr"):
        plan(load_recipe(recipe_file(bad)), tmp_path / "o")
    with pytest.raises(ValueError, match="--lengths.train.seed is invalid.*phases: backbone, memory"):
        plan(load_recipe(recipe_file()), tmp_path / "o", ["--lengths.train.seed", "3"])
    assert main(["recipe", str(recipe_file()), "--kinds", "lm2,gpt", "--out-dir", str(tmp_path / "o")]) == 2
    assert "--kinds lm2,gpt is invalid: gpt is not a model kind" in capsys.readouterr().err
    assert main(["recipe", "no-such-recipe", "--dry-run"]) == 2
    assert "babilong-bind" in capsys.readouterr().err  # the error lists the shipped recipes
    assert not (tmp_path / "o").exists()


def test_shipped_recipes_plan_and_dry_run_prints_each_phase(tmp_path, capsys):
    assert "babilong-bind" in recipe_names()
    for name in recipe_names():
        runs = plan(load_recipe(name), tmp_path / name)  # every phase's config validates
        assert runs and all(r.state() == "new" for r in runs)
    assert main(["recipe", "babilong-bind", "--dry-run", "--kinds", "lm2", "--out-dir", str(tmp_path / "b")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["backbone (all kinds, new)", "memory (lm2, new)",
                                                      "lengths (lm2, new)"]
    assert f"--model.init_from {tmp_path / 'b' / 'lm2' / 'memory' / 'ckpt-000750'}" in lines[2]
    assert not (tmp_path / "b").exists()  # a dry run writes nothing


@pytest.mark.parametrize("name", [n for n in recipe_names() if not load_recipe(n).phases[0].shared])
def test_shipped_recipes_give_every_kind_an_equal_budget(name, tmp_path):
    """Each kind's first model (built from scratch) has parameters within 2% of LM2's, on the same data."""
    recipe = load_recipe(name)
    firsts = {r.kind: r.cfg for r in reversed(plan(recipe, tmp_path, kinds=["lm2", "vanilla", "rmt"]))}
    counts = {kind: sum(p.numel() for p in loop.build_model(cfg, vocab_size=1024).parameters())
              for kind, cfg in firsts.items()}
    for kind in ("vanilla", "rmt"):
        assert abs(counts[kind] - counts["lm2"]) <= 0.02 * counts["lm2"], (name, counts)
        assert firsts[kind].data == firsts["lm2"].data, (name, kind)


@pytest.mark.parametrize("kind", ["lm2", "vanilla", "rmt"])
def test_qa2_first_recipe_is_the_measured_phase_zero_override(kind, tmp_path):
    """babilong-qa1to5-qa2 plans, for every kind, the runs RESULTS.md measured as babilong-qa1to5-zero with phase zero
    replaced by qa2 (scripts/reproduce.sh's qa2_first): field for field, only the phase folder's name differs."""
    drop = "went, moved, journeyed, travelled, back"  # scripts/reproduce.sh's qa2_curriculum "" 200 "$(step_tail 1300)"
    qa2_curriculum = (f"[{{steps: 200, lengths: [0k], bare_questions: true, drop_words: [{drop}, to, the, The, there, "
                      f"Where, is]}}, {{steps: 100, lengths: [0k], drop_words: [{drop}, to, the, The, there]}}, "
                      f"{{steps: 100, lengths: [0k], drop_words: [{drop}, to, there], compact_share: 0.5}}, "
                      f"{{steps: 100, lengths: [0k], drop_words: [{drop}, there], compact_share: 0.5}}, "
                      "{steps: 100, lengths: [0k], drop_words: [back, there], compact_share: 0.5}, "
                      "{steps: 200, lengths: [0k]}, {steps: 300, lengths: [0k], step_share: 0.5}, "
                      "{steps: 1300, lengths: [0k], step_share: 0.0}]")
    measured = plan(load_recipe("babilong-qa1to5-zero"), tmp_path, kinds=[kind], overrides=[
        "--zero.data.babi_tasks", "[qa2]", "--zero.train.lr", "2e-3", "--zero.data.ask_everyone", "true",
        "--zero.eval.lengths", "[0k]", "--zero.eval.interval", "400", "--zero.checkpoint.interval", "400",
        "--zero.data.answer_steps", "[qa2]", "--zero.data.curriculum", qa2_curriculum])
    shipped = plan(load_recipe("babilong-qa1to5-qa2"), tmp_path, kinds=[kind])
    assert [r.phase.name for r in shipped] == ["qa2", "five"]
    for old, new in zip(measured, shipped, strict=True):  # the configs as YAML, the phase folder renamed
        folder = tmp_path / kind
        old_yaml = yaml.safe_dump(old.cfg.to_dict()).replace(str(folder / "zero"), str(folder / "qa2"))
        assert old_yaml == yaml.safe_dump(new.cfg.to_dict())
