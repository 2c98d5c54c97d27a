"""One canonical label set for facial expressions; data classes aligned to a model's."""

from __future__ import annotations

import numpy as np
import pytest

from resattn.data import JAFFE_CLASSES
from resattn.data.labels import EXPRESSIONS, align_classes, canonical
from resattn.errors import DataError
from resattn.pretrained import pretrained_card

FER = pretrained_card("fer-resnet18")["class_names"]


def test_fer_names_are_the_canonical_set() -> None:
    assert tuple(FER) == EXPRESSIONS
    assert [canonical(n) for n in FER] == FER


def test_jaffe_names_map_onto_the_fer_model() -> None:
    assert [canonical(n) for n in JAFFE_CLASSES] == FER
    assert align_classes(JAFFE_CLASSES, FER, "jaffe/") == list(range(7))
    subset = ["sadness", "anger", "surprise"]  # a folder holding three expressions
    mapping = align_classes(subset, FER, "jaffe/")
    assert [FER[k] for k in mapping] == ["sad", "angry", "surprise"]
    labels = np.array([0, 1, 2, 1])
    assert np.asarray(mapping)[labels].tolist() == [5, 0, 6, 0]


def test_canonical_is_case_insensitive_and_keeps_unknown_names() -> None:
    assert canonical("Happiness") == "happy" and canonical(" SAD ") == "sad"
    assert canonical("Surprised") == "surprise"
    assert canonical("CXR") == "CXR" and canonical("contempt") == "contempt"


def test_unknown_data_class_is_named() -> None:
    with pytest.raises(DataError, match=r"ckplus/: class\(es\) \['contempt'\] are not"):
        align_classes(["anger", "contempt"], FER, "ckplus/")


def test_same_class_twice_is_an_error() -> None:
    with pytest.raises(DataError, match=r"mixed/: data classes \['anger', 'angry'\]"):
        align_classes(["anger", "angry"], FER, "mixed/")
    with pytest.raises(DataError, match=r"mixed/: the model's classes 'happy' and 'happiness'"):
        align_classes(["happy"], ["happy", "happiness"], "mixed/")


def test_other_names_match_exactly() -> None:
    names = ["AbdomenCT", "BreastMRI", "CXR"]
    assert align_classes(["CXR", "AbdomenCT"], names, "x") == [2, 0]
    with pytest.raises(DataError, match=r"'cxr'"):
        align_classes(["cxr"], names, "x")
