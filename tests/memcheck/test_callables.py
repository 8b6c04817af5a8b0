"""Which items of a container read as one function registered again (memcheck.callables)."""

from __future__ import annotations

import copy
import functools
import logging

import agcore as ag
from memcheck.callables import repeated_callable


class Stats:
    def hook(self, grad: object) -> object:
        return grad


def make_lambdas(n: int) -> list:
    return [lambda g: g for _ in range(n)]


def test_a_fresh_bound_method_each_time_is_one_function() -> None:
    stats = Stats()
    items = [stats.hook for _ in range(10)]
    assert items[0] is not items[1]  # distinct objects, one function
    assert repeated_callable(items + [1, "x"]) == (10, "Stats.hook()", False)


def test_closures_of_one_lambda_partials_and_module_hook_entries() -> None:
    assert repeated_callable(make_lambdas(5)) == (5, "a lambda in make_lambdas()", False)
    stats = Stats()
    assert repeated_callable([functools.partial(stats.hook)] * 3) == (3, "Stats.hook()", False)
    assert repeated_callable([(stats.hook, False)] * 4) == (4, "Stats.hook()", False)  # a module's (hook, flags)


def test_logging_handlers_of_one_class_are_one_entry_added_again() -> None:
    handlers = [logging.StreamHandler() for _ in range(3)] + [logging.NullHandler()]
    assert repeated_callable(handlers) == (3, "a StreamHandler", True)


def test_the_most_repeated_function_wins_and_plain_or_callable_objects_do_not_count() -> None:
    stats = Stats()
    assert repeated_callable([stats.hook, stats.hook, print, print, print]) == (3, "print()", False)
    model = ag.nn.Linear(2, 2)
    assert repeated_callable([copy.deepcopy(model) for _ in range(4)]) == (0, "", False)  # callable: model copies
    assert repeated_callable([1.0, 2.0, Stats]) == (0, "", False)  # a class is no hook entry
