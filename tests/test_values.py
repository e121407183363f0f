"""Profile values are read as their keys declare: numbers written as people write them."""

import pytest

from ntm_bench.benchmarks.harness.config import ConfigError, load_profile
from ntm_bench.benchmarks.harness.plan import resolve
from ntm_bench.benchmarks.harness import constructors
from ntm_bench.benchmarks.harness.values import ValueProblem, coerce, coerce_keys
from ntm_bench.models.base import SequenceModel


@pytest.mark.parametrize(
    "text,kind,value",
    [
        ("1e-4", float, 1e-4),
        ("3E-5", float, 3e-5),
        ("1_000", int, 1000),
        ("1_000", float, 1000.0),
        ("1e3", int, 1000),
        (" 7 ", int, 7),
        (50, float, 50),
        (2.0, int, 2),
        ("-0.5", float, -0.5),
        (None, float | None, None),
        (True, bool, True),
        ("lstm", str, "lstm"),
        ([1, 2], list, [1, 2]),
    ],
)
def test_numbers_are_read_as_people_write_them(text, kind, value):
    got = coerce(text, kind)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "text,kind,fragment",
    [
        ("abc", float, "expected a number"),
        ("2.5", int, "expected an integer"),
        (True, int, "expected an integer"),
        ("nan", float, "finite"),
        (float("inf"), float, "finite"),
        (2**40, int, "too large"),
        (1, bool, "true or false"),
        (3, str, "expected text"),
        (None, int, "got nothing"),
    ],
)
def test_values_that_do_not_fit_are_problems(text, kind, fragment):
    with pytest.raises(ValueProblem, match=fragment):
        coerce(text, kind)


def test_an_override_written_as_text_resolves_to_the_same_run():
    """`--set train.lr=1e-4` (a string to YAML 1.1) and `train.lr=0.0001` are one run."""
    written = resolve(load_profile("quick", ["train.lr=1e-4"]), "ntm", "copy", 1)
    plain = resolve(load_profile("quick", ["train.lr=0.0001"]), "ntm", "copy", 1)
    assert written.train.lr == 1e-4 and written.run_id == plain.run_id


def test_an_int_where_a_float_belongs_keeps_the_run_id():
    # clip: 50 in the profile stays 50, not 50.0, so stored runs keep their ids.
    assert resolve(load_profile("quick"), "ntm", "copy", 1).train.clip == 50
    with pytest.raises(ConfigError, match="train.clip: expected a number"):
        load_profile("quick", ["train.clip=fifty"])


class Unannotated(SequenceModel):
    """A model as someone might write it without annotations."""

    def __init__(
        self, input_size, output_size, hidden=8, scale=0.5, name="x", gate=True, extra=None
    ):
        super().__init__(input_size, output_size)


def test_a_keyword_without_annotation_is_read_as_its_defaults_type():
    hints = constructors.annotations(Unannotated)
    assert hints == {"hidden": int, "scale": float, "name": str, "gate": bool}
    with pytest.raises(ConfigError, match=r"models.mine.hidden: expected an integer, got 'abc'"):
        coerce_keys({"hidden": "abc"}, hints, "models.mine", ConfigError)
    assert coerce_keys({"hidden": "1_000", "extra": [1]}, hints, "m", ConfigError) == {
        "hidden": 1000,
        "extra": [1],  # no default's type to read it by: as given
    }
