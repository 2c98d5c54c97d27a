"""One label set for facial expressions, and class alignment between data and a model.

Canonical spelling: FER2013's (``angry``, ``happy``, ``sad``; ``disgust``, ``fear``,
``neutral``, ``surprise``). FER2013 is the larger and more widely used set, the shipped
``fer-resnet18`` already names its outputs so (its card and metrics need no change), and both
spellings sort into the same order, so class indices agree. JAFFE's file codes read as nouns
(``anger``, ``happiness``, ``sadness``) and are synonyms here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DataError

__all__ = ["EXPRESSIONS", "align_classes", "canonical"]

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
_SYNONYMS = {
    "anger": "angry", "happiness": "happy", "sadness": "sad",  # JAFFE
    "disgusted": "disgust", "fearful": "fear", "surprised": "surprise",  # adjective forms
}


def canonical(name: str) -> str:
    """The canonical spelling of an expression name (case-insensitive); any other name is
    returned unchanged (MedNIST's ``CXR`` stays ``CXR``)."""
    key = name.strip().lower()
    if key in EXPRESSIONS:
        return key
    return _SYNONYMS.get(key, name)


def align_classes(data_names: Sequence[str], model_names: Sequence[str],
                  where: str) -> list[int]:
    """``mapping[k]``: the model's class index for data class ``k``, matched through canonical
    names (relabel with ``np.asarray(mapping)[labels]``). DataError naming ``where`` if a data
    class has no model counterpart, or two names of one list mean the same class."""
    index: dict[str, int] = {}
    for k, name in enumerate(model_names):
        if canonical(name) in index:
            raise DataError(f"{where}: the model's classes {model_names[index[canonical(name)]]!r}"
                            f" and {name!r} are the same class; expected distinct classes")
        index[canonical(name)] = k
    unknown = [n for n in data_names if canonical(n) not in index]
    if unknown:
        raise DataError(f"{where}: class(es) {unknown} are not classes of this model; expected "
                        f"class names among {list(model_names)} (or their synonyms)")
    mapping = [index[canonical(n)] for n in data_names]
    if len(set(mapping)) < len(mapping):
        same = [n for n in data_names if mapping.count(index[canonical(n)]) > 1]
        raise DataError(f"{where}: data classes {same} are the same class; expected distinct "
                        "classes")
    return mapping
