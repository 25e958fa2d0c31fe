"""``mtst few-shot --model DIR --task intent=examples.csv -o OUT`` (mtst.cli.few_shot): a loadable fitted model,
warm updates of an existing task, ``--model default``, and one-line errors that write nothing."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from mtst import MultiTaskModel
from mtst.cli.app import MtstGroup
from mtst.cli.few_shot import register

EXAMPLES = [("the stock fell today", "x"), ("market rose", "x"), ("stock market", "x"),
            ("team won the game", "y"), ("play the game", "y"), ("won", "y")]


def command_app() -> typer.Typer:
    """The command on a group of its own, with the mtst error rule (registering it in mtst.cli is the lead's)."""
    app = typer.Typer(cls=MtstGroup)

    @app.callback()
    def _main() -> None:
        pass

    register(app)
    return app


def invoke(*args):
    return CliRunner().invoke(command_app(), ["few-shot", *map(str, args)])


@pytest.fixture
def files(tiny_model, tmp_path):
    """(model dir, examples.csv, descriptions.csv)."""
    (tmp_path / "examples.csv").write_text("text,label\n" + "".join(f"{t},{g}\n" for t, g in EXAMPLES))
    (tmp_path / "labels.csv").write_text("label,description\nx,money and markets\ny,sports and games\n")
    return tiny_model.save(tmp_path / "model"), tmp_path / "examples.csv", tmp_path / "labels.csv"


def test_a_new_task_is_fitted_and_saved_loadable(files, tmp_path):
    model_dir, examples, labels = files
    result = invoke("--model", model_dir, "--task", f"intent={examples}", "--descriptions", labels,
                    "--method", "prototype", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "intent: fitted with method prototype on 6 examples" in result.stdout
    loaded = MultiTaskModel.load(tmp_path / "out")
    assert loaded.config.heads["intent"].labels == ["x", "y"]
    assert loaded.config.heads["intent"].descriptions == ["money and markets", "sports and games"]
    assert loaded.config.heads["intent"].temperature is not None
    zero_shot = torch.from_numpy(loaded.encode(["x: money and markets", "y: sports and games"],
                                               normalize_embeddings=True))
    assert not torch.allclose(loaded.heads["intent"].label_vectors, zero_shot, atol=1e-3)  # fitted, not zero-shot
    assert {row["intent"]["label"] for row in loaded.predict([t for t, _ in EXAMPLES])} <= {"x", "y"}
    assert "intent" not in MultiTaskModel.load(model_dir).config.heads  # the input directory is untouched


def test_an_existing_task_is_updated_unless_from_scratch(files, tmp_path):
    model_dir, examples, labels = files
    assert invoke("--model", model_dir, "--task", f"intent={examples}", "-o", tmp_path / "a").exit_code == 0
    updated = invoke("--model", tmp_path / "a", "--task", f"intent={examples}", "-o", tmp_path / "b")
    assert updated.exit_code == 0, updated.output
    assert "intent: updated with method logistic on 6 examples" in updated.stdout
    before = MultiTaskModel.load(tmp_path / "a").heads["intent"].label_vectors
    assert not torch.equal(MultiTaskModel.load(tmp_path / "b").heads["intent"].label_vectors, before)
    refused = invoke("--model", tmp_path / "a", "--task", f"intent={examples}", "--descriptions", labels,
                     "-o", tmp_path / "c")
    assert refused.exit_code == 1 and refused.output.count("\n") == 1 and "--from-scratch" in refused.output
    assert not (tmp_path / "c").exists()
    scratch = invoke("--model", tmp_path / "a", "--task", f"intent={examples}", "--descriptions", labels,
                     "--from-scratch", "-o", tmp_path / "c")
    assert scratch.exit_code == 0 and "intent: fitted" in scratch.stdout


def test_model_default_loads_the_shipped_model(files, tmp_path, monkeypatch, tiny_model):
    _, examples, _ = files
    asked = []
    monkeypatch.setattr(MultiTaskModel, "load", classmethod(lambda cls, path, **options: asked.append(path)
                                                            or tiny_model))
    result = invoke("--task", f"intent={examples}", "-o", tmp_path / "out")  # --model default is the default
    assert result.exit_code == 0, result.output
    assert asked == [None] and (tmp_path / "out" / "mtst_config.json").is_file()


def test_a_backbone_gets_a_fresh_branch_that_auto_trains_for_the_new_task(files, tiny_st_dir, tmp_path,
                                                                          monkeypatch):
    from mtst.training import few_shot_branch

    monkeypatch.setattr(few_shot_branch, "EPOCHS", 2)
    monkeypatch.setattr(few_shot_branch, "FRESH_BRANCH_AT", 1)  # the tiny encoder has 2 layers
    _, examples, _ = files
    result = invoke("--backbone", tiny_st_dir, "--task", f"intent={examples}", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "intent: fitted with method contrastive on 6 examples" in result.stdout
    loaded, backbone = MultiTaskModel.load(tmp_path / "out"), MultiTaskModel.from_backbone(tiny_st_dir)
    assert loaded.tasks == ["intent"] and loaded.config.heads["intent"].task_path and loaded.branch is not None
    texts = [t for t, _ in EXAMPLES]
    assert torch.equal(torch.from_numpy(loaded.encode(texts)), torch.from_numpy(backbone.encode(texts)))


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "intent"], "expected TASK=PATH"),
    (["--task", "topic={examples}"], "few-shot fitting is for zero_shot_classification"),
    (["--task", "intent={examples}", "--method", "setfit"], "unknown --method 'setfit'"),
    (["--task", "intent={examples}", "--model", "no/such/dir"], "model directory not found"),
    (["--task", "intent={examples}", "--backbone", "no/such/dir"], "backbone directory not found"),
    (["--task", "intent={examples}", "--backbone", "default", "--model", "{model_dir}"], "not both"),
])
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, args, message):
    model_dir, examples, _ = files
    args = [str(arg).format(examples=examples, model_dir=model_dir) for arg in args]
    model = [] if "--model" in args or "--backbone" in args else ["--model", model_dir]
    result = invoke(*model, *args, "-o", tmp_path / "out")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_cross_fit_temperature_sets_another_temperature_and_is_refused_on_an_update(files, tiny_st_dir, tmp_path,
                                                                                    monkeypatch):
    from mtst.training import few_shot_branch

    monkeypatch.setattr(few_shot_branch, "EPOCHS", 2)
    monkeypatch.setattr(few_shot_branch, "FRESH_BRANCH_AT", 1)  # the tiny encoder has 2 layers
    _, examples, _ = files
    temperatures = []
    for flag, out in (([], "plain"), (["--cross-fit-temperature"], "crossed")):
        result = invoke("--backbone", tiny_st_dir, "--task", f"intent={examples}", *flag, "-o", tmp_path / out)
        assert result.exit_code == 0, result.output
        temperatures.append(MultiTaskModel.load(tmp_path / out).config.heads["intent"].temperature)
    assert temperatures[0] != temperatures[1]
    result = invoke("--model", tmp_path / "crossed", "--task", f"intent={examples}", "--cross-fit-temperature",
                    "-o", tmp_path / "again")
    assert result.exit_code == 1 and "add --from-scratch" in result.output and not (tmp_path / "again").exists()
