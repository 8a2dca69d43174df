"""Trainer and quantizer on tiny generated data: both data formats, a 1-epoch fit, int8 conversion."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tests.fakedata import (LABELS, fake_faces, write_csv, write_folders, write_other_domain,  # noqa: E402
                            write_votes)
from trainer import cli as train_cli  # noqa: E402
from trainer.data import DataError, load_split  # noqa: E402
from quantize import cli as quant_cli  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    return write_folders(tmp_path_factory.mktemp("fer") / "fer2013")


@pytest.fixture(scope="module")
def test_sets(folders, tmp_path_factory) -> list[str]:
    """--ferplus-votes and --diffusionfer arguments pointing at tiny generated ones."""
    d = tmp_path_factory.mktemp("other")
    return ["--ferplus-votes", str(write_votes(folders, d / "votes.csv")),
            "--diffusionfer", str(write_other_domain(d / "diffusionfer"))]


@pytest.fixture(scope="module")
def trained(folders, test_sets, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    cache = tmp_path_factory.mktemp("cache")
    rc = train_cli.main(["fit", "--data", str(folders), "--run", str(run), "--epochs", "4", "--width", "0.25",
                         "--depth", "1", "--batch-size", "16", "--lr", "0.01", "--cache-dir", str(cache),
                         "--labels", "blend", "--ferplus-weight", "0.6", *test_sets])
    assert rc == 0
    return run


def test_folder_and_csv_loaders_agree(folders, tmp_path):
    from_folders = load_split(folders, "train")
    from_csv = load_split(write_csv(tmp_path / "fer2013.csv"), "train")
    assert from_folders.x.shape == from_csv.x.shape == (140, 48, 48)
    assert sorted(from_folders.y.tolist()) == sorted(from_csv.y.tolist())
    assert load_split(tmp_path / "fer2013.csv", "private").x.shape == (14, 48, 48)
    # labels follow the canonical order whatever the folder order on disk
    assert [LABELS[i] for i in np.unique(from_folders.y)] == list(LABELS)


def test_cache_makes_second_load_identical(folders, tmp_path):
    first = load_split(folders, "test", tmp_path)
    assert list(tmp_path.glob("test-*.npz"))
    second = load_split(folders, "test", tmp_path)
    assert np.array_equal(first.x, second.x) and first.checksum == second.checksum


def test_bad_data_is_one_clear_error(folders, tmp_path):
    with pytest.raises(DataError, match="dataset not found"):
        load_split(tmp_path / "nope", "train")
    with pytest.raises(DataError, match="missing folder"):
        load_split(tmp_path, "train")
    odd = tmp_path / "odd"
    shutil.copytree(folders / "train", odd / "train")
    (odd / "train" / "contempt").mkdir()
    with pytest.raises(DataError, match="unknown emotion folder.*contempt"):
        load_split(odd, "train")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"bad.csv:2: expected 2304 pixel values"):
        load_split(bad_csv, "train")
    bad_csv.write_text("emotion,pixels\n3,1 2 3\n")
    with pytest.raises(DataError, match="missing CSV column"):
        load_split(bad_csv, "train")


def test_unreadable_image_is_skipped_and_counted(folders, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folders / "test", copy / "test")
    (copy / "test" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    split = load_split(copy, "test")
    assert split.skipped == 1 and len(split) == 70


def test_cli_reports_bad_data_without_traceback(tmp_path, capsys, folders):
    assert train_cli.main(["fit", "--data", str(tmp_path / "missing"), "--run", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fer-train: error: dataset not found") and "Traceback" not in err
    fit = ["fit", "--data", str(folders), "--run", str(tmp_path / "r"), "--labels", "ferplus"]
    assert train_cli.main([*fit, "--ferplus-votes", str(tmp_path / "none.csv")]) == 2
    assert capsys.readouterr().err == f"fer-train: error: FER+ votes not found: {tmp_path / 'none.csv'}\n"
    assert train_cli.main([*fit, "--ferplus-weight", "1.5"]) == 2
    assert "--ferplus-weight must be within 0..1" in capsys.readouterr().err
    weights = ["--teacher-logits", "a.npy", "b.npy", "--teacher-weights", "1"]
    assert train_cli.main([*fit[:4], str(tmp_path / "w"), *weights]) == 2
    assert "do not fit 2 teacher(s)" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing recorded for a command that cannot run


def test_missing_tensorflow_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as on an edge-only install
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(["evaluate", "runs/x"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("fer-train: error: ") and len(err.splitlines()) == 1
    assert "[train]" in err


def test_ferplus_votes_become_blended_targets_and_majority_labels(folders, test_sets):
    from trainer.ferplus import blend_targets, load_votes, majority, votes_for

    train = load_split(folders, "train")
    votes = votes_for(train, load_votes(Path(test_sets[1])))
    onehot = np.eye(7, dtype=np.float32)[train.y]
    t = blend_targets(train, onehot, votes, 0.6)
    # write_votes walks test/ before train/: its row index is offset by the 70 test images
    i = np.arange(len(train)) + 70
    no_row, not_face = i % 9 == 8, (i % 10 == 9) & (i % 9 != 8)
    assert np.array_equal(t.keep, ~no_row & ~not_face)
    assert t.counts == {"images": 140, "with_votes": int(t.keep.sum()), "fer2013_only": 0,
                        "left_out_no_row": int(no_row.sum()), "left_out_not_face": int(not_face.sum())}
    k = np.flatnonzero(t.keep)[0]
    expected = 0.4 * onehot[k] + 0.6 * (0.7 * onehot[k] + 0.3 * np.roll(onehot[k], 1))
    assert np.allclose(t.y[k], expected) and np.allclose(t.y.sum(1), 1)
    # the majority: the folder's class; not-a-face and missing rows have none (-1)
    m = majority(votes)
    assert np.array_equal(m[t.keep], train.y[t.keep]) and (m[~t.keep] == -1).all()
    tie = np.zeros((2, 10), np.float32)
    tie[0, [1, 2]] = 5  # happiness and surprise tied
    tie[1, 7] = 6  # contempt on top
    assert majority(tie).tolist() == [-1, -1]


def test_several_teachers_logits_are_averaged_and_checked(folders, tmp_path):
    from dataclasses import replace

    from trainer.fit import FitConfig, soft_targets

    train = load_split(folders, "train")
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(len(train), 7)).astype(np.float32) for _ in range(2))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    cfg = FitConfig(data=str(folders), run_dir=str(tmp_path), label_smoothing=0, distill_weight=1, distill_temperature=1,
                    teacher_logits=(str(tmp_path / "a.npy"), str(tmp_path / "b.npy")))
    mean = (a + b) / 2
    expected = np.exp(mean) / np.exp(mean).sum(1, keepdims=True)
    assert np.allclose(soft_targets(train, cfg).y, expected, atol=1e-6)
    weighted = (a + 3 * b) / 4
    expected = np.exp(weighted) / np.exp(weighted).sum(1, keepdims=True)
    assert np.allclose(soft_targets(train, replace(cfg, teacher_weights=(1, 3))).y, expected, atol=1e-6)
    with pytest.raises(DataError, match="one non-negative weight per"):
        replace(cfg, teacher_weights=(1,))  # refused before any data loads
    np.save(tmp_path / "short.npy", a[:-1])
    short = replace(cfg, teacher_logits=(str(tmp_path / "a.npy"), str(tmp_path / "short.npy")))
    with pytest.raises(DataError, match="short.npy have shape"):
        soft_targets(train, short)
    from trainer.teachers import load_logits

    with pytest.raises(DataError, match="holds train logits only"):  # never train logits in PublicTest's place
        load_logits(tmp_path / "a.npy", load_split(folders, "test"), "test")


def test_a_broken_teacher_file_is_one_clear_error_and_no_record(folders, tmp_path):
    from trainer import teachers

    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 cut short")  # a copy that stopped mid-way
    np.savez(tmp_path / "partial.npz", train=np.zeros((2, 7), np.float16))  # no checksums, no model
    train = load_split(folders, "train")
    for name in ("cut.npz", "partial.npz"):
        with pytest.raises(DataError, match=f"{name} is not a readable teacher file"):
            teachers.load_logits(tmp_path / name, train)
        assert teachers.made_by(tmp_path / name) is None
        assert quant_cli._own_record(tmp_path / name) == {"command": None, "config": None}
    with pytest.raises(DataError, match="cut.npz is not a readable teacher file"):
        teachers.load_model(tmp_path / "cut.npz")
    (tmp_path / "cut.npy").write_bytes(b"\x93NUMPY cut short")
    with pytest.raises(DataError, match="cut.npy is not readable teacher logits"):
        teachers.load_logits(tmp_path / "cut.npy", train)


def test_fit_writes_report_and_resumes(trained, folders, test_sets):
    for name in ("best.keras", "history.csv", "report.json", "report.md", "confusion.png", "roc.png", "curves.png",
                 "train_logits.npy", "config.json", "command.txt", "labels.json"):
        assert (trained / name).is_file(), name
    report = json.loads((trained / "report.json").read_text())
    assert set(report["per_class"]) == set(LABELS) and 0 <= report["accuracy"] <= 1
    assert np.load(trained / "train_logits.npy").shape == (140, 7)
    # the three test sets side by side, each with per-class recall and ROC AUC
    benches = report["benchmarks"]
    assert list(benches) == ["fer2013", "ferplus", "diffusionfer"]
    assert benches["ferplus"]["images"] + benches["ferplus"]["excluded"] == 70 and benches["diffusionfer"]["images"] == 21
    for b in benches.values():
        assert set(b["per_class_recall"]) == set(LABELS) and all(0 <= v <= 1 for v in b["roc_auc"].values())
    assert "FER+ majority" in (trained / "report.md").read_text()
    # the label source is recorded
    assert json.loads((trained / "config.json").read_text())["labels"] == "blend"
    assert json.loads((trained / "labels.json").read_text())["ferplus_share"] == 0.6
    # best.keras is the epoch with the best selection metric: 0.4 x FER-2013 + 0.6 x FER+, flip TTA
    with (trained / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    best = max(rows, key=lambda r: float(r["val_select"]))
    assert float(best["val_select"]) == pytest.approx(0.4 * float(best["val_accuracy_flip"])
                                                      + 0.6 * float(best["val_ferplus_flip"]))
    assert report["accuracy_flip_tta"] == pytest.approx(float(best["val_accuracy_flip"]))
    assert benches["ferplus"]["accuracy_flip_tta"] == pytest.approx(float(best["val_ferplus_flip"]))
    # the same command again resumes: the finished run adds no epochs
    rows = (trained / "history.csv").read_text().splitlines()
    assert train_cli.main(["fit", "--data", str(folders), "--run", str(trained), "--epochs", "4", "--width", "0.25",
                           "--depth", "1", "--batch-size", "16", "--lr", "0.01", "--labels", "blend",
                           "--ferplus-weight", "0.6", *test_sets]) == 0
    assert (trained / "history.csv").read_text().splitlines() == rows
    commands = (trained / "command.txt").read_text().splitlines()
    assert len(commands) == 2 and commands[-1].startswith("fer-train fit --data")


def test_teacher_saves_ensemble_logits_for_distillation(trained, folders, test_sets, tmp_path, capsys):
    ensemble = ["teacher", str(trained), str(trained / "best.keras"), "--data", str(folders), *test_sets]
    assert train_cli.main([*ensemble, "--no-flip-tta", "--out", str(tmp_path / "plain.npy")]) == 0
    assert train_cli.main([*ensemble, "--out", str(tmp_path / "tta.npy")]) == 0
    out = capsys.readouterr().out
    assert "PublicTest, FER-2013 labels" in out and "PublicTest, FER+ majority" in out and "DiffusionFER" in out
    plain, tta = np.load(tmp_path / "plain.npy"), np.load(tmp_path / "tta.npy")
    assert np.allclose(plain, np.load(trained / "train_logits.npy"), atol=1e-6)  # the mean of one model twice
    assert tta.shape == (140, 7) and not np.array_equal(tta, plain)
    fit = ["fit", "--data", str(folders), "--run", str(tmp_path / "kd"), "--epochs", "1", "--width", "0.25",
           "--depth", "1", "--batch-size", "16", "--cache-dir", str(tmp_path / "cache"), *test_sets]
    weighted = ["--teacher-logits", str(tmp_path / "plain.npy"), str(tmp_path / "tta.npy"), "--teacher-weights", "1", "3"]
    assert train_cli.main([*fit, *weighted]) == 0  # a weighted ensemble of saved logits trains a student
    assert train_cli.main(["teacher", str(tmp_path / "nothing"), "--data", str(folders), "--out", "x.npy"]) == 2
    assert "no model at" in capsys.readouterr().err


def test_online_teacher_labels_the_augmented_batch(trained, folders, test_sets, tmp_path, capsys):
    import keras

    from trainer.fit import FitConfig, load_teacher, soft_targets, train_dataset

    teacher = load_teacher((str(trained), str(trained / "best.keras")))
    cfg = FitConfig(data=str(folders), run_dir=str(tmp_path / "kd"), batch_size=16, teachers=(str(trained),),
                    distill_weight=1.0, distill_temperature=1.0)
    train = load_split(folders, "train", tmp_path / "cache")
    x, y, _ = next(iter(train_dataset(train, soft_targets(train, cfg), cfg, teacher)))
    expected = keras.ops.softmax(keras.models.load_model(trained / "best.keras")(x, training=False))
    assert np.allclose(y.numpy(), np.asarray(expected), atol=1e-5)  # targets from the images the student sees

    fit = ["fit", "--data", str(folders), "--run", str(tmp_path / "kd"), "--epochs", "1", "--width", "0.25",
           "--depth", "1", "--batch-size", "16", "--cache-dir", str(tmp_path / "cache"), *test_sets]
    assert train_cli.main([*fit, "--teacher", str(trained), "--mixup", "0.3"]) == 0
    assert json.loads((tmp_path / "kd" / "config.json").read_text())["teachers"] == [str(trained)]
    record = quant_cli._training_record(tmp_path / "kd")  # what the model card will say of its training
    assert "--teacher" in record["command"] and record["lineage"][str(trained)]["command"].startswith("fer-train fit")
    assert train_cli.main([*fit, "--run", str(tmp_path / "kd2"), "--teacher", str(tmp_path / "nothing")]) == 2
    assert "--teacher: no model at" in capsys.readouterr().err


def test_a_teacher_file_teaches_online_without_its_run(trained, folders, test_sets, tmp_path, capsys, caplog):
    import logging

    import keras

    from trainer import teachers

    caplog.set_level(logging.INFO, logger="trainer.fit")
    made = ["teacher", "--data", str(folders), *test_sets]
    assert train_cli.main([*made, str(trained), "--out", str(tmp_path / "one.npz")]) == 0
    model = teachers.load_model(tmp_path / "one.npz")  # rebuilt from the file alone: config + int8 kernels
    faces = fake_faces(8, 3)[0][..., None].astype(np.float32)
    original = keras.models.load_model(trained / "best.keras")(faces, training=False)
    assert np.allclose(model(faces, training=False), original, atol=0.05)
    assert teachers.made_by(tmp_path / "one.npz")["command"].startswith("fer-train fit")

    fit = ["fit", "--data", str(folders), "--epochs", "1", "--width", "0.25", "--depth", "1", "--batch-size", "16",
           "--cache-dir", str(tmp_path / "cache"), *test_sets]
    assert train_cli.main([*fit, "--run", str(tmp_path / "kd"), "--teacher", str(tmp_path / "one.npz"),
                           "--init-from", str(tmp_path / "one.npz")]) == 0  # the file also warm-starts a run
    assert f"initialised from {tmp_path / 'one.npz'}" in caplog.text
    record = quant_cli._training_record(tmp_path / "kd")  # the card names how the teacher was trained
    assert record["lineage"][str(tmp_path / "one.npz")]["command"].startswith("fer-train fit")
    assert train_cli.main([*made, str(tmp_path / "kd"), "--out", str(tmp_path / "kd.npz")]) == 0
    record = quant_cli._training_record(tmp_path / "kd.npz")  # a student warm-started from a file of its
    assert record["lineage"][str(tmp_path / "one.npz")]["command"].startswith("fer-train fit")  # own keeps the
    assert list(record["lineage"]) == [str(tmp_path / "one.npz")]  # chain behind it: its warm start and teacher, once

    assert train_cli.main([*made, str(trained), str(trained), "--out", str(tmp_path / "two.npz")]) == 0
    assert train_cli.main([*fit, "--run", str(tmp_path / "kd2"), "--teacher", str(tmp_path / "two.npz")]) == 2
    assert "holds logits only" in capsys.readouterr().err  # an ensemble's file: logits, no model


def test_a_run_grows_a_shallower_net_deeper_without_changing_what_it_computes(trained, folders, test_sets, tmp_path,
                                                                             capsys, caplog):
    import logging

    import keras

    from trainer.models import compact, grow

    donor = keras.models.load_model(trained / "best.keras")
    deeper = compact(width=0.25, depth=(1, 2, 3))
    grow(deeper, donor)  # the extra blocks start as identities
    faces = fake_faces(8, 5)[0][..., None].astype(np.float32)
    assert np.allclose(deeper(faces, training=False), donor(faces, training=False), atol=1e-5)

    caplog.set_level(logging.INFO, logger="trainer.fit")
    fit = ["fit", "--data", str(folders), "--epochs", "1", "--width", "0.25", "--batch-size", "16",
           "--cache-dir", str(tmp_path / "cache"), *test_sets]
    assert train_cli.main([*fit, "--run", str(tmp_path / "grown"), "--depth", "1", "1", "2",
                           "--init-from", str(trained)]) == 0
    assert "grown from compact_w0.25_d1: its extra blocks start as identities" in caplog.text
    assert json.loads((tmp_path / "grown" / "config.json").read_text())["depth"] == [1, 1, 2]

    assert train_cli.main([*fit, "--run", str(tmp_path / "shallower"), "--depth", "1",
                           "--init-from", str(tmp_path / "grown")]) == 2
    assert "a compact net may only grow deeper" in capsys.readouterr().err
    assert train_cli.main([*fit, "--run", str(tmp_path / "bad"), "--depth", "1", "2"]) == 2
    assert "one number or three" in capsys.readouterr().err


def test_a_soup_is_the_mean_of_its_runs_weights_and_the_card_names_them(trained, folders, test_sets, tmp_path,
                                                                        capsys):
    import keras

    fit = ["fit", "--data", str(folders), "--epochs", "1", "--width", "0.25", "--depth", "1", "--batch-size", "16",
           "--cache-dir", str(tmp_path / "cache"), *test_sets]
    assert train_cli.main([*fit, "--run", str(tmp_path / "tuned"), "--init-from", str(trained), "--seed", "3"]) == 0
    soup = ["soup", str(trained), str(tmp_path / "tuned"), "--data", str(folders),
            "--cache-dir", str(tmp_path / "cache"), *test_sets]
    assert train_cli.main([*soup, "--run", str(tmp_path / "soup")]) == 0
    assert "mean of 2 models; flip TTA: fer2013" in capsys.readouterr().out
    a, b, mean = (keras.models.load_model(r / "best.keras").get_weights()
                  for r in (trained, tmp_path / "tuned", tmp_path / "soup"))
    assert all(np.allclose(m, (x + y) / 2) for x, y, m in zip(a, b, mean))
    assert (tmp_path / "soup" / "report.json").is_file()
    record = quant_cli._training_record(tmp_path / "soup")  # the card names the runs and how each was made
    assert record["command"].startswith("fer-train soup")
    assert record["lineage"][str(tmp_path / "tuned")]["command"].startswith("fer-train fit")
    assert set(record["lineage"]) == {str(trained), str(tmp_path / "tuned")}  # tuned's warm start, named once
    assert train_cli.main([*fit, "--run", str(tmp_path / "branch"), "--init-from", str(tmp_path / "soup"),
                           "--seed", "4"]) == 0  # a run goes on from a soup, as make train's last branch does
    record = quant_cli._training_record(tmp_path / "branch")
    assert list(record["lineage"]) == [str(tmp_path / "soup"), str(trained), str(tmp_path / "tuned")]

    assert train_cli.main([*soup, "--run", str(tmp_path / "soup")]) == 0  # a soup is remade in place
    assert train_cli.main([*soup, "--run", str(trained)]) == 2  # a trained run is never overwritten
    assert "holds a trained run" in capsys.readouterr().err
    assert train_cli.main([*soup[:2], *soup[3:], "--run", str(tmp_path / "one")]) == 2
    assert "give two or more runs" in capsys.readouterr().err
    assert train_cli.main([*fit, "--run", str(tmp_path / "deep"), "--depth", "2"]) == 0
    assert train_cli.main([*soup[:3], str(tmp_path / "deep"), *soup[3:], "--run", str(tmp_path / "mixed")]) == 2
    assert "only models of one architecture" in capsys.readouterr().err


def test_evaluate_prints_its_result_and_none_of_tensorflows_chatter(trained, folders, test_sets):
    done = subprocess.run([sys.executable, "-m", "trainer.cli", "evaluate", str(trained), "--data", str(folders),
                           "--out", str(trained / "eval"), *test_sets], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("accuracy ") and len(done.stdout.splitlines()) == 1
    assert done.stderr == ""  # no start-up logs, no CUDA probe error


def test_quantize_writes_int8_model_and_card(trained, folders, test_sets, tmp_path, capfd):
    out = tmp_path / "fer_int8.tflite"
    assert quant_cli.main([str(trained), "--data", str(folders), "--out", str(out), "--calibration", "50",
                           *test_sets]) == 0
    printed, logged = capfd.readouterr()
    assert len(printed.splitlines()) == 1 and printed.startswith(f"{out}: ")
    assert "TensorSpec" not in logged + printed and "fully_quantize" not in logged + printed  # the converter's chatter
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["labels"] == list(LABELS) and card["input"]["size"] == [48, 48]
    assert card["input"]["dtype"] == "int8" and card["output"]["dtype"] == "int8"
    assert card["bytes"] == out.stat().st_size and card["params"] > 0 and card["macs"] > 0
    m = card["metrics"]
    assert m["int8_float_agreement"] >= 0.8
    assert abs(m["publictest_int8_accuracy"] - m["publictest_float_accuracy"]) <= 0.1
    assert list(m["test_sets"]) == ["fer2013", "ferplus", "diffusionfer"]  # int8 verified on all three
    assert m["test_sets"]["fer2013"]["int8_accuracy"] == m["publictest_int8_accuracy"]
    assert all(set(t["int8_per_class_recall"]) == set(LABELS) for t in m["test_sets"].values())
    assert card["data"]["ferplus_votes"] == test_sets[1]
    assert card["quantize"]["command"].startswith("fer-quantize ")
    assert card["data"]["train_checksum"].startswith("sha256:")
    calibration = card["confidence_calibration"]  # a temperature fitted to the votes, baked into the model
    assert 0.25 <= calibration["temperature"] <= 8 and "FER+ vote" in calibration["fitted_on"]
    assert set(calibration["expected_calibration_error"]) == {"fer2013", "ferplus", "diffusionfer"}
    assert 0 <= calibration["vote_calibration_error"]["publictest_with_votes"]["after"] <= 1

    capfd.readouterr()
    assert quant_cli.main([str(out), "--score", "--data", str(folders), *test_sets]) == 0  # the shipped file alone
    scores = json.loads(capfd.readouterr().out)
    assert {k: v["int8_accuracy"] for k, v in scores.items()} == {k: v["int8_accuracy"] for k, v in m["test_sets"].items()}
    assert quant_cli.main([str(tmp_path / "none.tflite"), "--score", "--data", str(folders)]) == 2

    from edge.classifier import Classifier  # the edge runtime loads and runs it
    probs = Classifier(out).classify(fake_faces(5, 9)[0])
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_flip_tta_model_averages_each_face_with_its_mirror(trained, folders, test_sets, tmp_path):
    from edge.classifier import Classifier

    out = tmp_path / "tta.tflite"
    assert quant_cli.main([str(trained), "--data", str(folders), "--out", str(out), "--calibration", "50",
                           "--flip-tta", *test_sets]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["flip_tta"] is True
    clf, step = Classifier(out), card["output"]["scale"]
    faces = fake_faces(5, 9)[0]
    batch = clf.logits(faces)
    assert np.allclose(batch, np.concatenate([clf.logits(f[None]) for f in faces]), atol=step)
    assert np.allclose(batch, clf.logits(np.ascontiguousarray(faces[:, :, ::-1])), atol=step)
    many = np.concatenate([faces] * 60)  # 300 faces: run in batches of Classifier.MAX_BATCH
    assert np.allclose(clf.logits(many), np.tile(batch, (60, 1)), atol=step)
    table = train_cli.compare([trained])
    assert "| flip TTA |" in table and "DiffusionFER" in table  # each quantized variant gets its row
    # a shipped .tflite as a distillation teacher: the edge runtime's logits of the train images
    assert train_cli.main(["teacher", str(out), "--data", str(folders), "--out", str(tmp_path / "int8.npy"),
                           *test_sets]) == 0
    train = load_split(folders, "train", tmp_path / "cache")
    assert np.array_equal(np.load(tmp_path / "int8.npy"), clf.logits(train.x))
    # the committed form: train and PublicTest logits, float16, checked against the images on use
    npz = tmp_path / "teacher.npz"
    assert train_cli.main(["teacher", str(out), "--data", str(folders), "--out", str(npz), *test_sets]) == 0
    with np.load(npz) as f:
        assert f["train"].dtype == np.float16 and f["test"].shape == (70, 7)
        assert np.allclose(f["train"], clf.logits(train.x), atol=1e-2)
    fit = ["fit", "--data", str(folders), "--run", str(tmp_path / "student"), "--epochs", "1", "--width", "0.25",
           "--depth", "1", "--batch-size", "16", "--cache-dir", str(tmp_path / "cache"), *test_sets,
           "--labels", "ferplus", "--teacher-logits", str(npz), "--precision", "bf16", "--stem-stride", "1"]
    assert train_cli.main(fit) == 0
    import keras
    student = keras.models.load_model(tmp_path / "student" / "best.keras")
    assert student.get_layer("logits").compute_dtype == "float32" and student.layers[2].compute_dtype == "bfloat16"
    stem = student.layers[2]  # --stem-stride 1: the stem sees the full face, the first block downsamples
    assert student.name.endswith("_s1") and stem.output.shape[1:3] == (48, 48)


def test_quantize_refuses_foreign_model(tmp_path, capsys):
    import keras

    foreign = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)])
    foreign.save(tmp_path / "foreign.keras")
    assert quant_cli.main([str(tmp_path / "foreign.keras"), "--out", str(tmp_path / "x.tflite")]) == 2
    assert "is not a fer-train model" in capsys.readouterr().err
