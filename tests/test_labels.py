"""The label registry: canonical names, dataset orders, aliases and mapping by name."""

from __future__ import annotations

import pytest

from orsanet import labels
from orsanet.labels import (AFFECTNET7_LABELS, AFFECTNET8_LABELS, CANONICAL, FER2013_LABELS, FERPLUS_LABELS,
                            RAFDB_LABELS, LabelError, canonical_name, canonical_or_none, dataset_label_names,
                            label_mapping, parse_label_spec)


def test_dataset_orders_follow_their_files():
    assert CANONICAL == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert FERPLUS_LABELS == CANONICAL
    assert FER2013_LABELS == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    assert RAFDB_LABELS == ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
    assert AFFECTNET8_LABELS == ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
    assert AFFECTNET7_LABELS == AFFECTNET8_LABELS[:7] and "contempt" not in AFFECTNET7_LABELS
    assert labels.NATIVE_CODE_OFFSET["rafdb"] == 1
    for order in labels.DATASET_ORDERS.values():
        assert set(order) <= set(CANONICAL) and len(set(order)) == len(order)


@pytest.mark.parametrize("alias, expected", [
    ("happy", "happiness"), ("Happy", "happiness"), ("HAPPINESS", "happiness"), ("sad", "sadness"),
    ("angry", "anger"), ("Surprised", "surprise"), ("fearful", "fear"), ("disgusted", "disgust"),
    ("Neutral", "neutral"), ("contemptuous", "contempt"), (" anger ", "anger"), ("HA", "happiness"),
])
def test_aliases_resolve_to_canonical_names(alias, expected):
    assert canonical_name(alias) == expected


def test_unknown_names_are_refused():
    assert canonical_or_none("bored") is None
    with pytest.raises(LabelError, match="unknown expression label 'bored'"):
        canonical_name("bored")


def test_dataset_label_names_and_specs():
    assert dataset_label_names("RAF-DB") == list(RAFDB_LABELS)
    assert parse_label_spec("fer2013") == list(FER2013_LABELS)
    assert parse_label_spec("happy, sad,neutral") == ["happiness", "sadness", "neutral"]
    with pytest.raises(LabelError, match="twice"):
        parse_label_spec("happy,happiness")
    with pytest.raises(LabelError, match="unknown dataset"):
        dataset_label_names("ck+")


def test_mapping_fer2013_to_rafdb_by_name():
    mapping, unmapped = label_mapping(FER2013_LABELS, RAFDB_LABELS)
    assert unmapped == []
    assert mapping == {0: 5, 1: 2, 2: 1, 3: 3, 4: 4, 5: 0, 6: 6}
    for source, target in mapping.items():
        assert FER2013_LABELS[source] == RAFDB_LABELS[target]


def test_mapping_reports_names_it_cannot_map():
    # an 8-class checkpoint (AffectNet order) evaluated on 7-class FER2013 data
    mapping, unmapped = label_mapping(AFFECTNET8_LABELS, FER2013_LABELS)
    assert unmapped == ["contempt"]
    assert len(mapping) == 7 and 7 not in mapping
    assert mapping[1] == FER2013_LABELS.index("happiness")
    # and the other way round every 7-class label has a place among the 8
    back, missing = label_mapping(FER2013_LABELS, AFFECTNET8_LABELS)
    assert missing == [] and sorted(back.values()) == list(range(7))


def test_mapping_accepts_aliases_and_own_class_names():
    mapping, unmapped = label_mapping(["happy", "Sad", "pain"], ["sadness", "happiness", "pain"])
    assert mapping == {0: 1, 1: 0, 2: 2} and unmapped == []
    with pytest.raises(LabelError, match="twice"):
        label_mapping(["happy"], ["happy", "happiness"])
