"""The training configs ship inside the package (lm2/configs, what a wheel installs; the repository's configs/ is a
link to it): found through the package, usable by bare name (`lm2 train babilong-tiny`), a clear error otherwise.
The wheel itself is built and run from an empty folder by .ci/run."""

from __future__ import annotations

from pathlib import Path

import pytest

import lm2
from lm2.cli import main
from lm2.train.config import load_config, resolve_config, shipped_config_names, shipped_configs_dir

REPO = Path(__file__).parents[2]


class Loaded(Exception):
    """Raised in place of training: the command got as far as a validated config."""


@pytest.fixture
def loaded(monkeypatch):
    """`lm2 train|demo` stops right after loading its config; the config file and the TrainConfig are kept."""
    import lm2.train.config as config

    seen = []
    real = config.load_config

    def load(path, overrides=None):
        seen.append((config.resolve_config(path), real(path, overrides)))
        raise Loaded

    monkeypatch.setattr(config, "load_config", load)
    return seen


def test_configs_are_found_through_the_package_and_all_load():
    folder = shipped_configs_dir()
    assert folder == Path(lm2.__file__).resolve().parent / "configs"
    assert (REPO / "configs").resolve() == folder  # the repository's configs/ is the link to them
    names = shipped_config_names()
    assert {"babilong-tiny", "recall-tiny", "pretrain-tiny", "lm2-1.7b"} <= set(names)
    for name in names:
        assert load_config(folder / f"{name}.yaml") == load_config(name)


def test_the_wheel_ships_the_configs():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "configs/*.yaml" in data["tool"]["setuptools"]["package-data"]["lm2"]


def test_a_bare_name_is_a_shipped_config_unless_a_file_has_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = shipped_configs_dir() / "babilong-tiny.yaml"
    assert resolve_config("babilong-tiny") == resolve_config("babilong-tiny.yaml") == shipped
    (tmp_path / "babilong-tiny.yaml").write_text("out_dir: mine\n")
    assert resolve_config("babilong-tiny.yaml") == Path("babilong-tiny.yaml")  # the file in this folder wins
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_config("elsewhere/recall-tiny.yaml")  # a path is a path: never a shipped config


def test_train_and_demo_take_a_shipped_name_and_overrides(tmp_path, monkeypatch, loaded):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Loaded):
        main(["train", "recall-tiny", "--train.steps", "2", "--no-progress"])
    with pytest.raises(Loaded):  # lm2 demo --help lists the overrides: they work as for lm2 train
        main(["demo", "--train.steps", "3", "--eval.samples=0", "--processes", "1", "--no-progress"])
    (train_path, train_cfg), (demo_path, demo_cfg) = loaded
    assert train_path == shipped_configs_dir() / "recall-tiny.yaml" and train_cfg.data.task == "recall"
    assert train_cfg.total_steps() == 2
    assert demo_path == shipped_configs_dir() / "babilong-qa1-demo.yaml"
    assert (demo_cfg.total_steps(), demo_cfg.eval.samples) == (3, 0)


def test_an_unknown_name_is_one_line_listing_the_shipped_configs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LM2_DEBUG", raising=False)
    assert main(["train", "babilong-small"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "config file babilong-small does not exist" in err
    assert all(name in err for name in shipped_config_names())
