"""Random-forest baselines: options, imputation, per-task forests on labelled rows, selection on
the validation split, and a benchmark run whose baseline rows use the networks' splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("sklearn")

from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from graphssl.bench import baselines, harness
from graphssl.core.config import from_dict, RunConfig
from graphssl.core.errors import ConfigError
from graphssl.data.splits import subsample_fraction
from graphssl.tasks.metrics import rmse


def test_options_defaults_and_errors():
    options = baselines.check_options("ecfp-rf", {"min_samples_leaf": 2})
    assert options["radius"] == 2 and options["bits"] == 2048 and options["n_estimators"] == 500
    assert options["min_samples_leaf"] == [2] and options["max_features"] == ["sqrt", 0.1]
    assert "descriptors" in baselines.check_options("rdkit-rf", {})
    with pytest.raises(ConfigError, match="has no option"):
        baselines.check_options("ecfp-rf", {"descriptors": "all"})
    with pytest.raises(ConfigError, match="max_features"):
        baselines.check_options("rdkit-rf", {"max_features": [1.5]})
    with pytest.raises(ConfigError, match="n_estimators"):
        baselines.check_options("rdkit-rf", {"n_estimators": 0})
    with pytest.raises(ConfigError, match="radius of method 'ecfp-rf' must be an integer >= 0"):
        baselines.check_options("ecfp-rf", {"radius": "2"})
    assert baselines.check_options("ecfp-rf", {"radius": 0})["radius"] == 0
    with pytest.raises(ConfigError, match="descriptor set"):
        baselines.check_options("rdkit-rf", {"descriptors": "everything"})
    methods = harness.parse_methods(["scratch", {"name": "ecfp-rf", "label": "rf", "n_estimators": 10}])
    assert methods[1].baseline == "ecfp-rf" and methods[1].label == "rf" and methods[1].objective is None
    with pytest.raises(ConfigError, match="ecfp-rf, rdkit-rf"):
        harness.parse_methods(["ecfp-svm"])


def test_features_are_computed_once_per_baseline_and_data_set(monkeypatch):
    monkeypatch.setattr(baselines, "_FEATURES", {})
    ecfp, rdkit = baselines.check_options("ecfp-rf", {}), baselines.check_options("rdkit-rf", {})
    smiles = ["CCO", "c1ccccc1", "CC(=O)O"]
    first, seconds = baselines.features("ecfp-rf", ecfp, smiles)
    assert first.shape == (3, 2048) and seconds > 0
    descriptors, seconds = baselines.features("rdkit-rf", rdkit, smiles)
    assert descriptors.shape[0] == 3 and descriptors.dtype == np.float64 and seconds > 0
    again, seconds = baselines.features("ecfp-rf", ecfp, list(smiles))  # the other baseline did not evict it
    assert again is first and seconds == 0.0
    other, seconds = baselines.features("ecfp-rf", {**ecfp, "bits": 64}, smiles)
    assert other.shape == (3, 64) and seconds > 0


def test_features_are_computed_for_the_rows_asked_and_kept_on_disk(monkeypatch, tmp_path):
    monkeypatch.setattr(baselines, "_FEATURES", {})
    computed = []
    compute = baselines._compute

    def counting(name, options, smiles, processes):
        computed.append(list(smiles))
        return compute(name, options, smiles, processes)

    monkeypatch.setattr(baselines, "_compute", counting)
    ecfp = baselines.check_options("ecfp-rf", {"bits": 64})
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCl"]
    matrix, seconds = baselines.features("ecfp-rf", ecfp, smiles, rows=[3, 1, 3], cache_dir=tmp_path)
    assert computed == [["c1ccccc1", "CCN"]] and seconds > 0
    assert matrix.shape == (5, 64) and not matrix[[0, 2, 4]].any()  # rows nobody asked for: not computed
    assert baselines.feature_summary("ecfp-rf") == {"computed": 2, "missing": 0}
    matrix, _ = baselines.features("ecfp-rf", ecfp, smiles, rows=[0, 1], cache_dir=tmp_path)
    assert computed[1:] == [["CCO"]]  # row 1 was kept

    # a new process (empty memory) reads the rows back from the cache: nothing is computed again
    monkeypatch.setattr(baselines, "_FEATURES", {})
    again, seconds = baselines.features("ecfp-rf", ecfp, smiles, rows=[0, 1, 3], cache_dir=tmp_path)
    assert len(computed) == 2 and seconds == 0.0
    from graphssl.molecule.fingerprints import ecfp_matrix

    reference = ecfp_matrix(smiles, bits=64)
    np.testing.assert_array_equal(again[[0, 1, 3]], reference[[0, 1, 3]])

    # a second process on the same cache: each save keeps the rows the other one wrote
    memory = baselines._FEATURES["ecfp-rf"]
    monkeypatch.setattr(baselines, "_FEATURES", {})
    baselines.features("ecfp-rf", ecfp, smiles, rows=[4], cache_dir=tmp_path)  # reads rows 0, 1, 3; adds 4
    monkeypatch.setattr(baselines, "_FEATURES", {"ecfp-rf": memory})  # the first process knows 0, 1, 3
    baselines.features("ecfp-rf", ecfp, smiles, rows=[2], cache_dir=tmp_path)
    assert baselines.feature_summary("ecfp-rf")["computed"] == 5
    monkeypatch.setattr(baselines, "_FEATURES", {})
    calls = len(computed)
    baselines.features("ecfp-rf", ecfp, smiles, cache_dir=tmp_path)
    assert len(computed) == calls  # every row is in the file

    # other molecules (or options) never read this file; a damaged file is said and recomputed
    monkeypatch.setattr(baselines, "_FEATURES", {})
    baselines.features("ecfp-rf", ecfp, smiles[:4], rows=[0], cache_dir=tmp_path)
    assert computed[-1] == ["CCO"]
    assert len(list((tmp_path / "baseline_features").iterdir())) == 2
    baselines._cache_path(tmp_path, "ecfp-rf", baselines._FEATURES["ecfp-rf"].key).write_bytes(b"not a zip file")
    monkeypatch.setattr(baselines, "_FEATURES", {})
    with pytest.warns(UserWarning, match="unreadable baseline feature cache"):
        baselines.features("ecfp-rf", ecfp, smiles[:4], rows=[2], cache_dir=tmp_path)
    assert computed[-1] == ["CC(=O)O"]


def test_missing_descriptors_take_the_training_median():
    matrix = np.array([[1.0, np.nan], [3.0, 10.0], [np.nan, 30.0], [100.0, np.nan], [np.nan, np.nan]])
    train = np.array([0, 1, 2])
    out = baselines._prepare(matrix, train, np.arange(5))
    # column 0: median of 1 and 3 (row 3's 100 is not a training row); column 1: median of 10 and 30
    np.testing.assert_allclose(out, [[1, 20], [3, 10], [2, 30], [100, 20], [2, 20]])
    assert out.dtype == np.float32
    huge = baselines._prepare(np.array([[1e300], [1.0]]), np.array([0, 1]), np.array([0]))
    assert np.isfinite(huge).all()  # clipped to float32's range, not infinity


@pytest.fixture
def fits(monkeypatch):
    """Every forest fit: (kind, features, labels). Synthetic matrices hold the row index in column 0."""
    seen: list[tuple[str, np.ndarray, np.ndarray]] = []
    for cls, kind in ((RandomForestRegressor, "reg"), (RandomForestClassifier, "cls")):
        original = cls.fit

        def fit(self, x, y, *args, _original=original, _kind=kind, **kwargs):
            seen.append((_kind, np.array(x), np.array(y)))
            return _original(self, x, y, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", fit)
    return seen


def test_regression_fits_on_train_rows_and_selects_by_validation(fits):
    rng = np.random.default_rng(0)
    n = 60
    matrix = np.column_stack([np.arange(n), rng.normal(size=(n, 3))])
    labels = (2 * matrix[:, 1] + 0.1 * rng.normal(size=n))[:, None]
    train, valid, test = np.arange(0, 40), np.arange(40, 50), np.arange(50, 60)
    options = baselines.check_options("rdkit-rf", {"n_estimators": 20, "max_features": [1, 3],
                                                    "min_samples_leaf": [1, 20]})
    result = baselines.fit_forests(matrix, labels, train, valid, test, "regression", "rmse", options, seed=0, n_jobs=1)
    assert len(fits) == 4 and all(set(x[:, 0].astype(int)) == set(train) for _, x, _ in fits)
    scores = [p["valid"] for p in result.grid]
    best = result.grid[int(np.argmin(scores))]
    assert result.selected == {"max_features": best["max_features"], "min_samples_leaf": best["min_samples_leaf"]}
    assert result.valid == min(scores) and result.train_size == 40
    # the reported test score is the selected forest's, refitted here with the same seed
    model = RandomForestRegressor(n_estimators=20, random_state=0, **result.selected)
    model.fit(baselines._prepare(matrix, train, train), labels[train, 0])
    expected = rmse(labels[test], model.predict(baselines._prepare(matrix, train, test))[:, None])
    assert result.test == pytest.approx(expected)
    again = baselines.fit_forests(matrix, labels, train, valid, test, "regression", "rmse", options, seed=0, n_jobs=2)
    # seeded: the worker count does not change the forest (threads add the trees' predictions in
    # any order, hence the last digits)
    assert again.test == pytest.approx(result.test, rel=1e-12) and again.selected == result.selected


def test_multitask_classification_one_forest_per_task_on_its_labelled_rows(fits):
    rng = np.random.default_rng(1)
    n = 80
    matrix = np.column_stack([np.arange(n), rng.normal(size=(n, 2))])
    labels = np.column_stack([(matrix[:, 1] > 0), (matrix[:, 2] > 0)]).astype(float)
    labels[::3, 0] = np.nan  # task 0 misses every third label, task 1 every fourth
    labels[::4, 1] = np.nan
    train, valid, test = np.arange(0, 50), np.arange(50, 65), np.arange(65, 80)
    options = baselines.check_options("ecfp-rf", {"n_estimators": 10, "max_features": ["sqrt"],
                                                   "min_samples_leaf": [1]})
    result = baselines.fit_forests(matrix, labels, train, valid, test, "classification", "roc_auc", options, seed=3)
    assert [kind for kind, _, _ in fits] == ["cls", "cls"]
    for t, (_, x, y) in enumerate(fits):
        rows = x[:, 0].astype(int)
        assert set(rows) == {i for i in train if np.isfinite(labels[i, t])}
        np.testing.assert_array_equal(y, labels[rows, t])
    assert 0.5 < result.test <= 1.0 and 0.5 < result.valid <= 1.0


def _config(tmp_path, csv, **benchmark):
    return from_dict(RunConfig, {
        "output_dir": str(tmp_path / "bench"), "cache_dir": str(tmp_path / "cache"), "progress": False,
        "threads": 1, "model": {"backbone": "gine", "hidden": 16, "num_layers": 2},
        "finetune": {"split": "random", "epochs": 1, "batch_size": 8},
        "benchmark": {"seeds": [0, 1], **benchmark},
    })


def test_benchmark_rows_use_the_networks_splits_and_no_test_molecule(tmp_path, molecule_csv, monkeypatch, fits):
    gnn, forest = [], []
    finetune = harness.finetune

    def record_finetune(cfg, checkpoint=None, dataset=None, split=None):
        ft = cfg.finetune
        gnn.append(((ft.split, ft.split_seed, ft.seed), subsample_fraction(split.train, ft.label_fraction, seed=ft.seed),
                    split.valid, split.test))
        return finetune(cfg, checkpoint=checkpoint, dataset=dataset, split=split)

    fit_forests = baselines.fit_forests

    def record_forests(matrix, labels, train, valid, test, *args, seed, **kwargs):
        forest.append((seed, matrix, train, valid, test))
        return fit_forests(matrix, labels, train, valid, test, *args, seed=seed, **kwargs)

    monkeypatch.setattr(harness, "finetune", record_finetune)
    monkeypatch.setattr(baselines, "fit_forests", record_forests)
    task = {"path": str(molecule_csv), "label_columns": ["logp"], "task_type": "regression", "label": "logp",
            "splits": ["random", {"name": "balanced_scaffold", "seeds": "finetune"}]}
    config = _config(tmp_path, molecule_csv, tier="test", tasks=[task], label_fractions=[0.5],
                     methods=["scratch", {"name": "ecfp-rf", "n_estimators": 8, "max_features": ["sqrt"]},
                              {"name": "rdkit-rf", "n_estimators": 8, "min_samples_leaf": [2]}])
    out = harness.run_benchmark(config, command="test")

    runs = json.loads((out / "results.json").read_text())["runs"]
    # random split (seed 0) x fine-tuning seeds 0, 1, plus one balanced scaffold split per seed
    assert len(runs) == 3 * 4
    assert {(r["split"], r["split_seed"], r["seed"]) for r in runs} == {
        ("random", 0, 0), ("random", 0, 1), ("balanced_scaffold", 0, 0), ("balanced_scaffold", 1, 1)}
    assert len(gnn) == 4 and len(forest) == 4 * 2
    for k, (seed, matrix, train, valid, test) in enumerate(forest):
        _, gnn_train, gnn_valid, gnn_test = gnn[k // 2]
        assert seed == gnn[k // 2][0][2]
        np.testing.assert_array_equal(train, gnn_train)  # the same label subset of the same split
        np.testing.assert_array_equal(valid, gnn_valid)
        np.testing.assert_array_equal(test, gnn_test)
        assert not set(train) & (set(test) | set(valid))
    # What the ECFP forests were fitted on, read back from the feature rows themselves (the
    # molecules' fingerprints all differ): the run's training molecules and nothing else.
    ecfp_calls = [f for f in forest if f[1].shape[1] == 2048]
    ecfp = ecfp_calls[0][1]
    used = sorted(set().union(*(set(t) | set(v) | set(te) for _, _, t, v, te in ecfp_calls)))
    rows_of = {ecfp[i].astype(np.float32).tobytes(): i for i in used}
    assert len(rows_of) == len(used) and len(ecfp) == 24
    assert not ecfp[sorted(set(range(24)) - set(used))].any()  # molecules no split uses: never featurized
    ecfp_fits = [x for _, x, _ in fits if x.shape[1] == 2048]
    assert len(ecfp_fits) == 2 * len(ecfp_calls) == 8  # min_samples_leaf 1 and 3 per run
    for j, x in enumerate(ecfp_fits):
        _, _, train, _, test = ecfp_calls[j // 2]
        fitted = {rows_of[row.tobytes()] for row in x}
        assert fitted == set(train) and not fitted & set(test)

    table = (out / "results.md").read_text()
    assert "| ecfp-rf |" in table and "| rdkit-rf |" in table
    paired = table[table.index("Paired difference"):]
    assert "| ecfp-rf |" in paired and "| rdkit-rf |" in paired
    assert "sample standard deviation (ddof = 1)" in table and "random forest on ECFP counts" in table
    assert (out / "paired.png").read_bytes()[:4] == b"\x89PNG" and (out / "results.png").is_file()


def test_baselines_refuse_tasks_without_molecules(tmp_path, molecule_csv):
    config = _config(tmp_path, molecule_csv, tasks=["b3db", {"name": "qm9-3d", "label_columns": ["gap"]}],
                     methods=["scratch", "ecfp-rf"])
    with pytest.raises(ConfigError, match="'ecfp-rf' .* works on molecules only; task 'qm9-3d:gap' is atomistic"):
        harness.run_benchmark(config, command="test")
    assert not (tmp_path / "bench").exists()  # refused before anything ran
