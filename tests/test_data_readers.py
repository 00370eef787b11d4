"""Dataset readers on tiny generated trees (and the real FERPlus label files when present)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from data_fakes import (make_affectnet_csv, make_class_tree, make_fer2013_csv, make_ferplus, make_rafdb,
                        rafdb_entries, save_corrupt, save_image)
from PIL import Image
from torch.utils.data import DataLoader

from orsanet.data import (DatasetError, FaceDataset, apply_subset, detect_kind, ferplus_target, open_dataset,
                          split_dataset, stratified_split)
from orsanet.data.fer2013 import open_fer2013_csv
from orsanet.labels import (AFFECTNET7_LABELS, AFFECTNET8_LABELS, CANONICAL, FER2013_LABELS, FERPLUS_LABELS,
                            RAFDB_LABELS, label_mapping)

SHARED_FERPLUS = Path(__file__).parents[1] / ".." / "shared" / "data" / "ferplus"

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
VOTES = {
    "clear": [6, 2, 0, 0, 0, 0, 0, 0, 2, 0],       # all modes: neutral
    "single_votes": [1, 4, 0, 0, 3, 0, 0, 0, 1, 1],  # ones dropped: 4 of 7 -> happiness
    "tie": [4, 4, 0, 0, 2, 0, 0, 0, 0, 0],         # majority and argmax drop; probability keeps
    "unknown_top": [0, 0, 0, 0, 0, 0, 0, 0, 6, 4],  # no emotion at all: dropped everywhere
    "nf_top": [3, 0, 0, 0, 0, 0, 0, 0, 3, 4],      # NF wins: dropped except probability (neutral 1.0)
    "all_ones": [1] * 10,                           # nothing left after dropping single votes
    "emotion_ties_unknown": [0, 0, 5, 0, 0, 0, 0, 0, 5, 0],  # argmax tie with unknown: dropped
    "contempt": [0, 0, 0, 0, 0, 0, 0, 2, 1, 0],    # all modes: contempt
    "plurality": [4, 3, 3, 0, 0, 0, 0, 0, 0, 0],   # no majority, argmax neutral
}
EXPECTED = {  # name -> (majority, argmax, probability kept?)
    "clear": (0, 0, True), "single_votes": (1, 1, True), "tie": (None, None, True),
    "unknown_top": (None, None, False), "nf_top": (None, None, True), "all_ones": (None, None, False),
    "emotion_ties_unknown": (None, None, True), "contempt": (7, 7, True), "plurality": (None, 0, True),
}


@pytest.fixture
def ferplus_root(tmp_path):
    return make_ferplus(tmp_path / "ferplus", {"train": list(VOTES.values()), "valid": [VOTES["clear"]] * 2,
                                               "test": [VOTES["contempt"], VOTES["tie"], VOTES["clear"]]})


# --------------------------------------------------------------------------------------------- FERPlus

@pytest.mark.parametrize("case", list(VOTES))
def test_ferplus_target_rules(case):
    majority, argmax, kept = EXPECTED[case]
    assert ferplus_target(VOTES[case], "majority") == majority
    assert ferplus_target(VOTES[case], "argmax") == argmax
    soft = ferplus_target(VOTES[case], "probability")
    assert (soft is not None) == kept
    if soft is not None:
        assert len(soft) == 8 and abs(sum(soft) - 1) < 1e-9


def test_ferplus_modes_on_a_fake_tree(ferplus_root):
    majority = open_dataset("ferplus", ferplus_root, "train")
    assert [target for _, target in majority.samples] == [0, 1, 7]
    assert majority.label_names == list(FERPLUS_LABELS)
    assert majority.class_counts() == {"neutral": 1, "happiness": 1, "surprise": 0, "sadness": 0, "anger": 0,
                                       "disgust": 0, "fear": 0, "contempt": 1}
    assert majority.names == ["fer0000000.png", "fer0000001.png", "fer0000007.png"]
    assert "fer0000002.png" in majority.excluded
    argmax = open_dataset("ferplus", ferplus_root, "train", label_mode="argmax")
    assert [target for _, target in argmax.samples] == [0, 1, 7, 0]
    soft = open_dataset("ferplus", ferplus_root, "train", label_mode="probability")
    assert len(soft) == 7
    image, target = soft[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert target.dtype == torch.float32 and torch.allclose(target, torch.tensor([0.75, 0.25] + [0.0] * 6))
    assert [len(open_dataset("ferplus", ferplus_root, s)) for s in ("valid", "test")] == [2, 2]


def test_ferplus_vote_targets_keep_the_majority_images(ferplus_root):
    votes = open_dataset("ferplus", ferplus_root, "train", vote_targets=True)
    assert votes.names == open_dataset("ferplus", ferplus_root, "train").names  # the same images
    assert votes.hard_labels() == [0, 1, 7]  # their argmax is the majority label
    _, target = votes[1]  # single votes dropped: happiness 4, anger 3 of 7
    assert torch.allclose(target, torch.tensor([0, 4 / 7, 0, 0, 3 / 7, 0, 0, 0]))
    with pytest.raises(DatasetError, match="vote targets need FERPlus votes"):
        open_dataset("folder", ferplus_root / "FER2013Train", None, vote_targets=True)


def test_ferplus_input_errors(ferplus_root, tmp_path):
    with pytest.raises(DatasetError, match=r"FER2013Valid/label\.csv: missing FERPlus label file"):
        (ferplus_root / "FER2013Valid" / "label.csv").unlink()
        open_dataset("ferplus", ferplus_root, "valid")
    label_file = ferplus_root / "FER2013Test" / "label.csv"
    lines = label_file.read_text().splitlines()
    label_file.write_text("\n".join(lines[:2] + ["fer9.png,\"(0, 0, 48, 48)\",1,2,3"]) + "\n")
    with pytest.raises(DatasetError, match=r"label\.csv:3: malformed line: expected name, face box and 10 votes"):
        open_dataset("ferplus", ferplus_root, "test")
    label_file.write_text("\n".join(lines[:1] + ["fer9.png,\"(0, 0, 48, 48)\",a,0,0,0,0,0,0,0,0,0"]) + "\n")
    with pytest.raises(DatasetError, match=r"label\.csv:2: malformed line: votes must be integers"):
        open_dataset("ferplus", ferplus_root, "test")
    absent = make_ferplus(tmp_path / "absent", {"train": [VOTES["clear"]] * 3}, missing={"fer0000001.png"})
    with pytest.raises(DatasetError, match=r"label\.csv: image .*fer0000001\.png is listed but absent \(1 of 3"):
        open_dataset("ferplus", absent, "train")
    with pytest.raises(DatasetError, match="split must be one of train, valid, test"):
        open_dataset("ferplus", ferplus_root, "dev")
    with pytest.raises(DatasetError, match="label mode must be one of"):
        open_dataset("ferplus", ferplus_root, "train", label_mode="soft")


def test_real_ferplus_label_counts():
    """Microsoft's majority protocol and the argmax rule on the real label.csv files (images not opened)."""
    if not (SHARED_FERPLUS / "FER2013Train" / "label.csv").is_file():
        pytest.skip(f"FERPlus not found at {SHARED_FERPLUS}")
    majority = [len(open_dataset("ferplus", SHARED_FERPLUS, split)) for split in ("train", "valid", "test")]
    assert majority == [25045, 3191, 3137]
    argmax = [len(open_dataset("ferplus", SHARED_FERPLUS, s, label_mode="argmax")) for s in ("train", "valid", "test")]
    assert argmax == [26940, 3396, 3371]


# --------------------------------------------------------------------------------------------- FER2013

FER2013_ROWS = [(0, "Training"), (3, "Training"), (6, "Training"), (3, "Training"), (4, "PublicTest"),
                (5, "PrivateTest"), (1, "PrivateTest")]


def test_fer2013_csv_splits_and_pixels(tmp_path):
    csv_path = make_fer2013_csv(tmp_path / "fer2013" / "fer2013.csv", FER2013_ROWS)
    train = open_dataset("fer2013", csv_path, "train")
    assert train.label_names == list(FER2013_LABELS)
    assert [target for _, target in train.samples] == [0, 3, 6, 3]
    assert train.class_counts()["happiness"] == 2
    assert train.names[1] == "fer2013.csv/1"
    image, target = train[3]
    assert image.size == (48, 48) and image.mode == "RGB" and target == 3
    assert image.getpixel((0, 0)) == (3, 3, 3) and image.getpixel((1, 0)) == (4, 4, 4)
    test = open_dataset("fer2013", csv_path.parent, "test")  # the folder holding fer2013.csv works too
    assert test.names == ["fer2013.csv/5", "fer2013.csv/6"] and [t for _, t in test.samples] == [5, 1]
    assert len(open_dataset("fer2013", csv_path, "valid")) == 1


def test_fer2013_csv_errors(tmp_path):
    with pytest.raises(DatasetError, match="missing FER2013 label file"):
        open_fer2013_csv(tmp_path / "nothing.csv", "train")
    path = make_fer2013_csv(tmp_path / "bad.csv", [(0, "Training"), (7, "Training")])
    with pytest.raises(DatasetError, match=r"bad\.csv:3: unknown label '7'"):
        open_dataset("fer2013", path, "train")
    path.write_text(path.read_text().replace(",Training", ",Train", 1))
    with pytest.raises(DatasetError, match=r"bad\.csv:2: unknown Usage 'Train'"):
        open_dataset("fer2013", path, "train")
    path.write_text('emotion,pixels,Usage\n2,"1 2 3",Training\n')
    with pytest.raises(DatasetError, match=r"bad\.csv:2: malformed line: pixels must be 2304 integers"):
        open_dataset("fer2013", path, "train")
    path.write_text("emotion,pixels\n2,1\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: malformed header: column\(s\) usage missing"):
        open_dataset("fer2013", path, "train")


def test_fer2013_folder_form(tmp_path):
    root = make_class_tree(tmp_path / "fer2013", {"train": {"angry": 2, "happy": 3, "neutral": 1},
                                                   "test": {"sad": 1, "surprise": 2}})
    train = open_dataset("fer2013", root, "train")
    assert train.label_names == list(FER2013_LABELS)
    assert sorted(train.hard_labels()) == [0, 0, 3, 3, 3, 6]
    assert open_dataset("fer2013", root, "test").class_counts()["surprise"] == 2
    (root / "train" / "bored").mkdir()
    save_image(root / "train" / "bored" / "x.png")
    with pytest.raises(DatasetError, match=r"bored: unknown label 'bored'"):
        open_dataset("fer2013", root, "train")


# --------------------------------------------------------------------------------------------- RAF-DB

def test_rafdb_reader(tmp_path):
    entries = rafdb_entries({1: 2, 4: 3, 5: 1, 7: 2}) + rafdb_entries({6: 2, 4: 1}, split="test")
    root = make_rafdb(tmp_path / "basic", entries)
    train = open_dataset("rafdb", root, "train")
    assert train.label_names == list(RAFDB_LABELS)
    assert len(train) == 8 and train.code_offset == 1
    assert train.class_counts() == {"surprise": 2, "fear": 0, "disgust": 0, "happiness": 3, "sadness": 1,
                                    "anger": 0, "neutral": 2}
    first_name, first_code = entries[0]
    assert train.names[0] == first_name and train.samples[0][1] == first_code - 1
    assert Path(train.samples[0][0]).name == first_name.replace(".jpg", "_aligned.jpg")
    test = open_dataset("rafdb", root, "test")
    assert test.class_counts()["anger"] == 2 and len(test) == 3
    image, target = test[0]
    assert image.mode == "RGB" and isinstance(target, int)


def test_rafdb_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"EmoLabel/list_patition_label\.txt: missing RAF-DB label file"):
        open_dataset("rafdb", tmp_path, "train")
    root = make_rafdb(tmp_path / "basic", [("train_00001.jpg", 1), ("train_00002.jpg", 8)])
    with pytest.raises(DatasetError, match=r"list_patition_label\.txt:2: unknown label '8' \(known: 1\.\.7\)"):
        open_dataset("rafdb", root, "train")
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text("train_00001.jpg 1\n\ntrain_00002.jpg\n")
    with pytest.raises(DatasetError, match=r"list_patition_label\.txt:3: malformed line"):
        open_dataset("rafdb", root, "train")
    root = make_rafdb(tmp_path / "absent", [("train_00001.jpg", 1), ("train_00002.jpg", 2)],
                      missing={"train_00002.jpg"})
    with pytest.raises(DatasetError, match=r"list_patition_label\.txt: image .*train_00002_aligned\.jpg is listed"):
        open_dataset("rafdb", root, "train")
    with pytest.raises(DatasetError, match="RAF-DB split must be one of train, test"):
        open_dataset("rafdb", root, "valid")


def test_rafdb_folder_copy_with_codes(tmp_path):
    root = make_class_tree(tmp_path / "raf", {"train": {"1": 1, "4": 2, "7": 1}})
    train = open_dataset("rafdb", root, "train")
    assert train.class_counts()["happiness"] == 2 and train.class_counts()["surprise"] == 1
    save_image(root / "train" / "9" / "x.png")
    with pytest.raises(DatasetError, match=r"unknown label code 9 \(known: 1\.\.7\)"):
        open_dataset("rafdb", root, "train")


# --------------------------------------------------------------------------------------------- AffectNet

AFFECTNET_ROWS = [(f"{code}/img{i}.jpg", code) for i, code in enumerate([0, 1, 1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 10])]


def test_affectnet_csv_7_and_8_classes(tmp_path):
    make_affectnet_csv(tmp_path / "AffectNet", "training.csv", AFFECTNET_ROWS)
    make_affectnet_csv(tmp_path / "AffectNet", "validation.csv", AFFECTNET_ROWS[:3])
    eight = open_dataset("affectnet8", tmp_path / "AffectNet", "train")
    assert eight.label_names == list(AFFECTNET8_LABELS) and len(eight) == 10
    assert eight.class_counts()["contempt"] == 2 and eight.class_counts()["happiness"] == 2
    assert eight.names[0] == "0/img0.jpg"
    assert eight.excluded == {"8/img10.jpg": "none", "9/img11.jpg": "uncertain", "10/img12.jpg": "non-face"}
    seven = open_dataset("affectnet7", tmp_path / "AffectNet", "train")
    assert seven.label_names == list(AFFECTNET7_LABELS) and len(seven) == 8
    assert "contempt" not in seven.class_counts()
    assert len(open_dataset("affectnet8", tmp_path / "AffectNet", "val")) == 3
    image, target = seven[1]
    assert image.mode == "RGB" and target == 1


def test_affectnet_csv_with_pth_column_and_errors(tmp_path):
    root = tmp_path / "affectnet"
    for i, code in enumerate([0, 7, 3]):
        save_image(root / "images" / f"{i}.png")
    csv_path = root / "train.csv"
    csv_path.write_text("pth,expression\nimages/0.png,0\nimages/1.png,7\nimages/2.png,3\n")
    assert open_dataset("affectnet7", csv_path, "train").hard_labels() == [0, 3]
    csv_path.write_text("pth,expression\nimages/0.png,0\nimages/1.png,happy\n")
    with pytest.raises(DatasetError, match=r"train\.csv:3: unknown label 'happy'"):
        open_dataset("affectnet8", csv_path, "train")
    csv_path.write_text("pth,expression\nimages/0.png,0\nimages/5.png,1\n")
    with pytest.raises(DatasetError, match=r"train\.csv: image .*5\.png is listed but absent"):
        open_dataset("affectnet8", csv_path, "train")
    csv_path.write_text("file,emotion\nimages/0.png,0\n")
    with pytest.raises(DatasetError, match=r"train\.csv: malformed header"):
        open_dataset("affectnet8", csv_path, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="missing AffectNet label file training.csv"):
        open_dataset("affectnet8", tmp_path / "empty", "train")


def test_affectnet_folder_form(tmp_path):
    root = make_class_tree(tmp_path / "an", {"train": {str(code): 1 for code in range(11)},
                                             "val": {"happy": 2, "contempt": 1, "Neutral": 1}})
    eight = open_dataset("affectnet8", root, "train")
    assert len(eight) == 8 and eight.hard_labels() == list(range(8))
    seven = open_dataset("affectnet7", root, "train")
    assert len(seven) == 7 and len(seven.excluded) == 4
    val7 = open_dataset("affectnet7", root, "val")
    assert val7.class_counts()["happiness"] == 2 and len(val7) == 3
    assert open_dataset("affectnet8", root, "val").class_counts()["contempt"] == 1


# --------------------------------------------------------------------------------------------- folder trees

def test_folder_tree_aliases_and_consistent_order(tmp_path):
    root = make_class_tree(tmp_path / "occlu", {"train": {"Happy": 2, "sad": 1, "Angry": 1, "neutral": 1},
                                                "test": {"happiness": 1, "anger": 2}})
    train, test = open_dataset("folder", root, "train"), open_dataset("folder", root, "test")
    assert train.label_names == ["neutral", "happiness", "sadness", "anger"]
    assert test.label_names == train.label_names  # the test split lacks two classes, same indices
    assert test.class_counts() == {"neutral": 0, "happiness": 1, "sadness": 0, "anger": 2}
    assert train.names[0] == "Angry/Angry_0.png"
    nested = make_class_tree(tmp_path / "flat", {".": {"fear": 2}})
    assert len(open_dataset("folder", nested, None)) == 2


def test_folder_tree_unknown_names_and_own_labels(tmp_path):
    root = make_class_tree(tmp_path / "own", {"train": {"cat": 2, "dog": 1}})
    with pytest.raises(DatasetError, match=r"cat: unknown label 'cat': not an expression name .* pass label_names"):
        open_dataset("folder", root, "train")
    own = open_dataset("folder", root, "train", label_names=["dog", "cat", "bird"])
    assert own.label_names == ["dog", "cat", "bird"] and own.class_counts() == {"dog": 1, "cat": 2, "bird": 0}
    with pytest.raises(DatasetError, match="is not among the given label_names"):
        open_dataset("folder", root, "train", label_names=["dog"])
    numbered = make_class_tree(tmp_path / "numbered", {"train": {"0": 1}})
    with pytest.raises(DatasetError, match="unknown label '0'"):
        open_dataset("folder", numbered, "train")
    with pytest.raises(DatasetError, match="no such split folder"):
        open_dataset("folder", root, "valid")


# --------------------------------------------------------------------------------------------- corrupt images

def test_corrupt_images_are_skipped_counted_and_reported(tmp_path, caplog):
    root = make_class_tree(tmp_path / "faces", {"train": {"happy": 3, "sad": 2}})
    save_corrupt(root / "train" / "happy" / "happy_1.png", "garbage")
    save_corrupt(root / "train" / "sad" / "sad_0.png", "truncated")
    dataset = open_dataset("folder", root, "train")
    assert len(dataset) == 5  # listed up front; detected when read
    with caplog.at_level(logging.WARNING, logger="orsanet.data.base"):
        targets = [dataset[i][1] for i in range(len(dataset))]
    assert targets == dataset.hard_labels()  # each bad sample replaced by one of its own class
    assert sorted(Path(p).name for p in dataset.skipped) == ["happy_1.png", "sad_0.png"]
    assert sum("unreadable image skipped" in r.message for r in caplog.records) == 2
    again = dataset[1]  # known bad: served by the same substitute, no new report
    assert again[0].tobytes() == dataset[2][0].tobytes() and len(dataset.skipped) == 2
    loader = DataLoader(dataset, batch_size=2, collate_fn=lambda batch: batch)
    assert sum(len(batch) for batch in loader) == 5  # a whole epoch runs through

    fresh = open_dataset("folder", root, "train", scan_images=True)
    assert len(fresh) == 3 and len(fresh.skipped) == 2
    assert all(Path(p).exists() for p, _ in fresh.samples)


def test_all_unreadable_raises_once(tmp_path):
    path = save_corrupt(tmp_path / "t" / "fear" / "a.png")
    dataset = FaceDataset([(path, 0)], ["fear"], name="tiny")
    with pytest.raises(DatasetError, match="tiny: no readable image left"):
        dataset[0]
    with pytest.raises(IndexError):
        dataset[1]


# --------------------------------------------------------------------------------------------- subsets

def test_subset_list_restricts_and_attaches_conditions(tmp_path, caplog):
    entries = rafdb_entries({1: 3, 4: 3, 7: 3})
    root = make_rafdb(tmp_path / "basic", entries)
    names = [name for name, _ in entries]
    code = dict(entries)
    wrong = 4 if code[names[2]] != 4 else 1
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "occlusion_list.txt").write_text(
        f"# RAN-style list\n{names[4]} {code[names[4]]} glasses\n{names[0]} - mask\n\n"
        f"{names[2].replace('.jpg', '_aligned.jpg')} {wrong}\n{names[7]}\n")
    with caplog.at_level(logging.WARNING):
        subset = open_dataset("rafdb", root, "train", subset=lists / "occlusion_list.txt")
    assert subset.names == [names[4], names[0], names[2], names[7]]
    assert subset.conditions == ["glasses", "mask", "occlusion_list", "occlusion_list"]
    assert subset.condition_counts() == {"glasses": 1, "mask": 1, "occlusion_list": 2}
    assert subset.samples[2][1] == code[names[2]] - 1
    assert "1 listed label(s) differ" in caplog.text
    full = open_dataset("rafdb", root, "train")
    relabelled = apply_subset(full, lists / "occlusion_list.txt", label_source="list")
    assert relabelled.samples[2][1] == wrong - 1
    (lists / "pose_30.txt").write_text(f"{names[4]} happiness\n{names[1]}\n")
    both = apply_subset(full, [lists / "occlusion_list.txt", lists / "pose_30.txt"])
    assert len(both) == 6 and both.condition_counts()["pose_30"] == 2


def test_subset_list_errors(tmp_path):
    root = make_class_tree(tmp_path / "faces", {"train": {"happy": 2, "sad": 2}})
    dataset = open_dataset("folder", root, "train")
    bad = tmp_path / "bad.txt"
    bad.write_text("happy/happy_0.png\nnope_1.png\nnope_2.png\nsad_1.png\n")
    with pytest.raises(DatasetError, match=r"bad\.txt: 2 listed image\(s\) not in .*: nope_1\.png, nope_2\.png"):
        apply_subset(dataset, bad)
    bad.write_text("happy_0.png 0 mask extra\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:1: malformed line"):
        apply_subset(dataset, bad)
    bad.write_text("happy_0.png furious\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:1: unknown label 'furious'"):
        apply_subset(dataset, bad)
    make_class_tree(tmp_path / "dup", {"train": {"happy": 1, "sad": 1}})
    (tmp_path / "dup" / "train" / "sad" / "sad_0.png").rename(tmp_path / "dup" / "train" / "sad" / "happy_0.png")
    bad.write_text("happy_0.png\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:1: 'happy_0\.png' matches 2 images"):
        apply_subset(open_dataset("folder", tmp_path / "dup", "train"), bad)
    bad.write_text("sad/happy_0.png\n")
    assert open_dataset("folder", tmp_path / "dup", "train", subset=bad).hard_labels() == [1]


def test_subset_names_images_left_out_by_the_protocol(tmp_path, ferplus_root):
    listed = tmp_path / "list.txt"
    listed.write_text("fer0000000.png\nfer0000002.png\n")  # the second is a tie: no majority label
    with pytest.raises(DatasetError, match="1 listed image.*fer0000002.png; 1 of them left out by the label protocol"):
        open_dataset("ferplus", ferplus_root, "train", subset=listed)
    assert len(open_dataset("ferplus", ferplus_root, "train", label_mode="probability", subset=listed)) == 2


# --------------------------------------------------------------------------------------------- splits, mapping

def test_stratified_split_is_seeded_and_stratified():
    labels = [0] * 10 + [1] * 20 + [2] * 3 + [3]
    kept, held = stratified_split(labels, 0.2, seed=3)
    assert sorted(kept + held) == list(range(len(labels))) and not set(kept) & set(held)
    assert [sum(labels[i] == c for i in held) for c in range(4)] == [2, 4, 1, 0]  # a lone sample stays in train
    assert stratified_split(labels, 0.2, seed=3) == (kept, held)
    assert stratified_split(labels, 0.2, seed=4) != (kept, held)
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(labels, 1.0)


def test_split_dataset_carves_validation_from_rafdb_train(tmp_path):
    root = make_rafdb(tmp_path / "basic", rafdb_entries({1: 10, 4: 10, 7: 5}))
    train = open_dataset("rafdb", root, "train")
    part, valid = split_dataset(train, 0.2, seed=0)
    assert len(part) + len(valid) == 25 and len(valid) == 5
    assert valid.class_counts() == {"surprise": 2, "fear": 0, "disgust": 0, "happiness": 2, "sadness": 0,
                                    "anger": 0, "neutral": 1}
    assert not set(part.names) & set(valid.names)


def test_label_mapping_between_fer2013_and_rafdb_data(tmp_path):
    fer = open_dataset("fer2013", make_fer2013_csv(tmp_path / "fer2013.csv", FER2013_ROWS), "train")
    raf = open_dataset("rafdb", make_rafdb(tmp_path / "basic", rafdb_entries({c: 1 for c in range(1, 8)})), "train")
    mapping, unmapped = label_mapping(fer.label_names, raf.label_names)
    assert unmapped == []
    for _, target in fer.samples:  # a FER2013 target re-indexed into RAF-DB's order keeps its name
        assert raf.label_names[mapping[target]] == fer.label_names[target]
    assert mapping[FER2013_LABELS.index("happiness")] == RAFDB_LABELS.index("happiness") == 3


def test_detect_kind_and_open_dataset_checks(tmp_path, ferplus_root):
    assert detect_kind(ferplus_root) == "ferplus"
    assert detect_kind(make_rafdb(tmp_path / "raf", [("train_00001.jpg", 1)])) == "rafdb"
    assert detect_kind(make_fer2013_csv(tmp_path / "f" / "fer2013.csv", FER2013_ROWS)) == "fer2013"
    assert detect_kind(tmp_path / "f") == "fer2013"
    make_affectnet_csv(tmp_path / "an", "training.csv", AFFECTNET_ROWS[:2])
    assert detect_kind(tmp_path / "an") == "affectnet8"
    assert detect_kind(make_class_tree(tmp_path / "tree", {"train": {"happy": 1}})) == "folder"
    assert len(open_dataset("auto", ferplus_root, "train")) == 3
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset("ferplus", tmp_path / "missing", "train")
    with pytest.raises(DatasetError, match="unknown dataset kind 'ck'"):
        open_dataset("ck", ferplus_root, "train")
    with pytest.raises(DatasetError, match="'probability' needs FERPlus votes"):
        open_dataset("rafdb", tmp_path / "raf", "train", label_mode="probability")
    assert set(CANONICAL) == set(FERPLUS_LABELS)
