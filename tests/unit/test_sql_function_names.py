"""``functions`` makes most of PySpark's functions from their SQL names, several to a line
(``upper, lower = map(_of_column, ("upper", "lower"))``): each must be bound to its own name."""
from sluicegate.driver.sql import functions as F


def _made_from_names():
    return {name: f for name, f in vars(F).items()
            if callable(f) and getattr(f, "__module__", None) == F.__name__
            and f.__code__.co_name == "function"}


def test_each_function_made_from_a_name_is_bound_to_that_name():
    made = _made_from_names()
    assert len(made) > 40
    for name, f in made.items():
        # an alias (mean = avg) is bound to the function of another name, itself bound right
        assert getattr(F, f.__name__) is f, (name, f.__name__)


def test_a_function_made_from_a_name_calls_the_sql_function_of_that_name():
    assert repr(F.upper("word")) == "Column<'upper(word)'>"
    assert repr(F.greatest("a", "b")) == "Column<'greatest(a, b)'>"
    assert repr(F.cume_dist()) == "Column<'cume_dist()'>"
    assert F.stddev_samp is F.stddev and F.mean is F.avg
