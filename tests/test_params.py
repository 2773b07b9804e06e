import pytest

from earlyreadout.errors import UserError
from earlyreadout.params import Choice, Param, resolve
from earlyreadout.registry import Registry


def test_coerce_types_and_bounds():
    assert Param(0.1, low=0.0).coerce("0.5") == 0.5
    assert Param(3, low=1).coerce(4.0) == 4
    assert Param(True).coerce("false") is False
    assert Param(None, nullable=True, kind=float).coerce(None) is None
    for bad_param, bad_value in [(Param(3, low=1), 0), (Param(3), 2.5), (Param(0.1, low=0.0, open_low=True), 0.0),
                                 (Param("a", choices=("a", "b")), "c"), (Param(1.0), True), (Param(1), "x")]:
        with pytest.raises(ValueError):
            bad_param.coerce(bad_value)


def test_describe_reads_like_a_sentence():
    assert Param(0.5, low=0.0, high=1.0).describe() == "a float in the range [0, 1]"
    assert Param(0.5, low=0.0, open_low=True).describe() == "a float in the range (0, inf)"
    assert Param(1, low=1).describe() == "an int in the range [1, inf)"


def test_resolve_fills_defaults_and_reports_every_problem():
    specs = {"lr": Param(0.1, low=0.0), "depth": Param(2, low=0)}
    values, problems = resolve(specs, {"lr": 0.5}, "method 'x'")
    assert values == {"lr": 0.5, "depth": 2} and problems == []
    _, problems = resolve(specs, {"lr": -1, "detph": 3}, "method 'x'")
    assert len(problems) == 2
    assert any("'lr' parameter of method 'x' must be a float in the range [0, inf); got -1" in p for p in problems)
    assert any("unknown parameter 'detph'" in p and "did you mean 'depth'" in p for p in problems)


def test_choice_space_suggests_through_trial():
    class FakeTrial:
        def suggest_categorical(self, name, choices):
            return choices[-1]

    assert Choice((1, 2, 3)).suggest(FakeTrial(), "k") == 3


def test_registry_lists_options_and_refuses_duplicates():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha")(1)
    reg.register("beta")(2)
    assert reg.get("beta") == 2 and reg.names() == ["alpha", "beta"]
    with pytest.raises(UserError, match="unknown thing 'alpah' \\(did you mean 'alpha'\\?\\); available: alpha, beta"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha")(3)
