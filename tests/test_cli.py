import json

import pytest

from graphssl.cli import build_parser, main


def _tiny_config(tmp_path, molecule_csv):
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""
output_dir: {tmp_path / 'out'}
cache_dir: {tmp_path / 'cache'}
progress: false
data: {{path: {molecule_csv}}}
model: {{backbone: gine, hidden: 16, num_layers: 2}}
pretrain: {{epochs: 1, batch_size: 8}}
finetune:
  task: {{path: {molecule_csv}, label_columns: [logp], task_type: regression}}
  split: scaffold
  epochs: 2
  batch_size: 8
benchmark:
  methods: [scratch, attrmask, {{name: graphmae, mask_rate: 0.5}}]
  tasks: [{{path: {molecule_csv}, label_columns: [logp], task_type: regression}}]
  seeds: [0, 1]
""")
    return path


@pytest.mark.slow
def test_pretrain_finetune_benchmark_end_to_end(tmp_path, molecule_csv, capsys):
    config = _tiny_config(tmp_path, molecule_csv)
    assert main(["pretrain", "--config", str(config), "--set", "objective.name=attrmask"]) == 0
    encoder = tmp_path / "out" / "encoder.pt"
    assert encoder.is_file()
    assert main(["finetune", "--config", str(config), "--checkpoint", str(encoder),
                 "--set", f"output_dir={tmp_path / 'ft'}"]) == 0
    assert "best validation" in capsys.readouterr().out
    assert main(["benchmark", "--config", str(config), "--set", f"output_dir={tmp_path / 'bench'}"]) == 0
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert {r["method"] for r in results["runs"]} == {"scratch", "attrmask", "graphmae"}
    assert len(results["runs"]) == 6
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "scratch" in table and "graphmae" in table and "±" in table and "Machine" in table
    assert (tmp_path / "bench" / "results.png").stat().st_size > 1000


def test_errors_exit_with_a_message(tmp_path, molecule_csv, capsys):
    config = _tiny_config(tmp_path, molecule_csv)
    assert main(["pretrain", "--config", str(config), "--set", "pretrain.epoch=3"]) == 2
    assert "unknown option 'pretrain.epoch'" in capsys.readouterr().err
    assert main(["finetune", "--config", str(config), "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["pretrain", "finetune", "benchmark"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    for option in ["--config", "--set", "pretrain.epochs", "finetune.label_fraction", "model.backbone",
                   "data.on_error", "benchmark.methods"]:
        assert option in text
    if command == "finetune":
        assert "--checkpoint" in text


@pytest.mark.slow
def test_data_generate_commands(tmp_path, capsys):
    assert main(["data", "generate", "emt", "--n", "3", "--out", str(tmp_path / "emt"), "--no-progress"]) == 0
    assert (tmp_path / "emt" / "emt.extxyz").is_file()
    assert main(["data", "generate", "brep", "--n", "2", "--out", str(tmp_path / "brep"), "--no-progress"]) == 0
    assert len(list((tmp_path / "brep").glob("part_*.step"))) == 2
    assert "parts/s" in capsys.readouterr().out


@pytest.mark.slow
def test_atomistic_pretraining_and_finetuning_by_name(tmp_path):
    common = ["--set", f"cache_dir={tmp_path / 'cache'}", "--set", "progress=false", "--set", "model.backbone=painn",
              "--set", "model.hidden=16", "--set", "model.num_layers=1"]
    assert main(["pretrain", "--set", "data.name=qm9-3d", "--set", "data.limit=40", "--set", "objective.name=scd",
                 "--set", "pretrain.epochs=1", "--set", "pretrain.batch_size=16",
                 "--set", f"output_dir={tmp_path / 'pre'}", *common]) == 0
    assert main(["finetune", "--checkpoint", str(tmp_path / "pre" / "encoder.pt"), "--set", "finetune.task.name=qm9-3d",
                 "--set", "finetune.task.label_columns=[gap]", "--set", "finetune.task.limit=60",
                 "--set", "finetune.split=random", "--set", "finetune.epochs=1",
                 "--set", f"output_dir={tmp_path / 'ft'}", *common]) == 0
    result = json.loads((tmp_path / "ft" / "result.json").read_text())
    assert result["metric"] == "mae" and result["task"] == "qm9-3d"


@pytest.mark.parametrize("command, override, option", [
    ("finetune", "finetune.epochs=0", "finetune.epochs"),
    ("pretrain", "pretrain.epochs=0", "pretrain.epochs"),
    ("pretrain", "pretrain.epochs=-1", "pretrain.epochs"),
    ("finetune", "finetune.batch_size=0", "finetune.batch_size"),
    ("finetune", "finetune.dropout=1.5", "finetune.dropout"),
    ("finetune", "finetune.lr=-1", "finetune.lr"),
    ("pretrain", "pretrain.lr=-1", "pretrain.lr"),
    ("pretrain", "pretrain.num_workers=-1", "pretrain.num_workers"),
    ("pretrain", "model.jk=concat", "model.jk"),
    ("pretrain", "model.norm=batchnrm", "model.norm"),
    ("pretrain", "model.options.hiden=3", "model.options.hiden"),
    ("finetune", "finetune.label_fraction=0", "finetune.label_fraction"),
    ("finetune", "finetune.task.task_type=regresion", "finetune.task.task_type"),
    ("finetune", "finetune.split=scafold", "finetune.split"),
    ("finetune", "output_dir=''", "output_dir"),
])
def test_bad_options_exit_2_with_one_line_naming_the_option(tmp_path, molecule_csv, capsys, command, override,
                                                            option):
    config = _tiny_config(tmp_path, molecule_csv)
    assert main([command, "--config", str(config), "--set", override]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("graphssl: error: ") and captured.err.count("\n") == 1, captured.err
    assert f"'{option}'" in captured.err and "Traceback" not in captured.err
    assert "mols: read" not in captured.out  # refused before the data build


def test_a_repeated_section_exits_2_naming_both_lines(tmp_path, molecule_csv, capsys):
    config = _tiny_config(tmp_path, molecule_csv)
    config.write_text(config.read_text() + "pretrain: {epochs: 10, batch_size: 256}\n")
    assert main(["pretrain", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "key 'pretrain' appears twice" in err and "line 7 and line 17" in err


def test_folders_that_are_files_exit_2(tmp_path, molecule_csv, capsys):
    config = _tiny_config(tmp_path, molecule_csv)
    (tmp_path / "a_file").write_text("x")
    for option in ("output_dir", "cache_dir"):
        assert main(["pretrain", "--config", str(config), "--set", f"{option}={tmp_path / 'a_file' / 'run'}"]) == 2
        assert f"option '{option}'" in capsys.readouterr().err


def test_a_checkpoint_folder_is_named_as_a_folder(tmp_path, molecule_csv, capsys):
    config = _tiny_config(tmp_path, molecule_csv)
    assert main(["finetune", "--config", str(config), "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a file" in err and "encoder.pt" in err and "does not exist" not in err


def test_benchmark_checks_tasks_and_methods_before_pretraining(tmp_path, molecule_csv, capsys):
    config = _tiny_config(tmp_path, molecule_csv)
    for override, named in [("benchmark.tasks=[b3bd]", "'benchmark.tasks[0].name': unknown data set 'b3bd'"),
                            ("benchmark.methods=[scratch, {name: graphmae, mask_rte: 0.5}]",
                             "'benchmark.methods[1].mask_rte' is not an option of objective 'graphmae'")]:
        assert main(["benchmark", "--config", str(config), "--set", override]) == 2
        assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # no pretraining ran


def test_diverging_runs_exit_2_and_write_no_weights(tmp_path, molecule_csv, capsys):
    config = _tiny_config(tmp_path, molecule_csv)
    assert main(["pretrain", "--config", str(config), "--set", "objective.name=attrmask",
                 "--set", "pretrain.lr=1e30"]) == 2
    assert "pretraining diverged" in capsys.readouterr().err
    assert not (tmp_path / "out" / "encoder.pt").exists()
    assert main(["finetune", "--config", str(config), "--set", "finetune.lr=1e6",
                 "--set", f"output_dir={tmp_path / 'ft'}"]) == 2
    captured = capsys.readouterr()
    assert "fine-tuning diverged" in captured.err and "rmse nan" not in captured.out
    assert not (tmp_path / "ft" / "result.json").exists() and not (tmp_path / "ft" / "best.pt").exists()
