"""Hooks and callbacks registered again at every step, as people write them, run under ``memcheck run``.

Each entry weighs a few dozen bytes, so no memory signal is certain in a short run; what gives
them away is a hook list that grows with the iterations by one function again and again. Their
twins register once, or remove what they register, and must stay clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.memcheck.test_leak_patterns import Result, assert_clean, run_script


def hooks_finding(r: Result) -> dict:
    assert r.rc == 1, r.explain()
    found = [f for f in r.findings if f["kind"] == "accumulated_hooks"]
    assert len(found) == 1, [(f["kind"], f["owner"]) for f in r.findings]
    f = found[0]
    assert f["sites"][0] == r.site(), f["sites"]
    assert "registered again at every iteration" in r.text and f"script.py:{r.line()}" in r.text, r.explain()
    assert f["evidence"]["entries_per_iteration"] >= 0.9
    return f


def test_a_gradient_hook_registered_on_every_parameter_every_step(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class GradStats:
            def __init__(self):
                self.norms = []

            def hook(self, grad):
                self.norms.append(float((grad * grad).sum().item()))
                return grad


        def train(model, opt, stats, steps):
            for step in range(steps):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                for p in model.parameters():
                    p.register_hook(stats.hook)  # culprit
                loss.backward()
                opt.step()
                stats.norms.clear()


        def main():
            model = make_model()
            train(model, make_optimizer(model), GradStats(), 150)


        if __name__ == "__main__":
            main()
        """,
    )
    f = hooks_finding(r)
    assert f["evidence"]["function"] == "GradStats.hook()"
    assert all(h.startswith("Parameter '") and h.endswith("'._hooks") for h in f["evidence"]["holders"]), f
    assert f["owner"] in f["evidence"]["holders"]


def test_a_forward_hook_registered_every_step_that_keeps_nothing(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Monitor:
            def __init__(self):
                self.last = 0.0

            def record(self, module, inputs, output):
                self.last = float(output.data.mean())


        def main():
            model = make_model()
            opt = make_optimizer(model)
            monitor = Monitor()
            for step in range(150):
                x, y = batch(step)
                model.register_forward_hook(monitor.record)  # culprit
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()


        if __name__ == "__main__":
            main()
        """,
    )
    f = hooks_finding(r)
    assert f["evidence"]["function"] == "Monitor.record()"
    assert f["evidence"]["holders"] == ["MLP._forward_hooks"], f["evidence"]["holders"]


def test_a_trainer_that_appends_its_own_callback_every_step(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Trainer:
            def __init__(self):
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.callbacks = []
                self.seen = 0

            def count(self, loss):
                self.seen += 1

            def step(self, step):
                self.callbacks.append(self.count)  # culprit
                x, y = batch(step)
                self.opt.zero_grad()
                loss = ag.cross_entropy(self.model(x), y)
                loss.backward()
                self.opt.step()
                for callback in self.callbacks:
                    callback(loss.item())


        def main():
            trainer = Trainer()
            for step in range(150):
                trainer.step(step)


        if __name__ == "__main__":
            main()
        """,
    )
    f = hooks_finding(r)
    assert f["owner"] == "Trainer.callbacks" and f["evidence"]["function"] == "Trainer.count()"


def test_hooks_registered_once_or_removed_through_their_handles_are_clean(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class GradStats:
            def __init__(self):
                self.norms = []

            def hook(self, grad):
                self.norms.append(float((grad * grad).sum().item()))
                return grad


        def main():
            model = make_model()
            opt = make_optimizer(model)
            stats = GradStats()
            first = list(model.parameters())[0]
            first.register_hook(stats.hook)  # once, before the loop
            callbacks = [stats.norms.clear]
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                handles = [p.register_hook(stats.hook) for p in model.parameters()]
                loss.backward()
                for handle in handles:
                    handle.remove()  # every step's hooks go again
                opt.step()
                for callback in callbacks:
                    callback()


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


EVENTS = """
from collections import defaultdict


class EventBus:
    def __init__(self):
        self._subscribers = defaultdict(list)

    def subscribe(self, topic, fn):
        self._subscribers[topic].append(fn)

    def publish(self, topic, **payload):
        for fn in self._subscribers[topic]:
            fn(**payload)
"""


def test_a_listener_subscribed_to_an_event_bus_every_step_names_the_subscribe_call(tmp_path: Path) -> None:
    (tmp_path / "events.py").write_text(EVENTS)
    r = run_script(
        tmp_path,
        """
        from events import EventBus


        class Trainer:
            def __init__(self, bus):
                self.bus = bus
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.best = float("inf")

            def on_loss(self, step, value):
                self.best = min(self.best, value)

            def train(self, steps):
                for step in range(steps):
                    self.bus.subscribe("loss", self.on_loss)  # culprit
                    x, y = batch(step)
                    self.opt.zero_grad()
                    loss = ag.cross_entropy(self.model(x), y)
                    loss.backward()
                    self.opt.step()
                    self.bus.publish("loss", step=step, value=loss.item())


        if __name__ == "__main__":
            Trainer(EventBus()).train(150)
        """,
    )
    f = hooks_finding(r)  # the loop's subscribe call first, the bus's own append after it
    assert f["owner"] == "EventBus._subscribers" and f["sites"][1].endswith("events.py:10"), f["sites"]


LOGSETUP = """
import logging
import sys


def get_logger(name="train"):
    log = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stdout)
    log.addHandler(handler)  # culprit
    return log
"""


def test_a_logging_handler_added_by_a_helper_the_loop_calls_every_step(tmp_path: Path) -> None:
    (tmp_path / "logsetup.py").write_text(LOGSETUP)
    r = run_script(
        tmp_path,
        """
        from logsetup import get_logger


        def main():
            model = make_model()
            opt = make_optimizer(model)
            for step in range(150):
                log = get_logger()  # caller
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                if step % 100 == 0:
                    log.info("step %d loss %.4f", step, loss.item())


        if __name__ == "__main__":
            main()
        """,
    )
    assert r.rc == 1, r.explain()
    # one finding: logging's own list of weak references to its handlers grows too, and holds none of them
    assert [f["kind"] for f in r.findings] == ["accumulated_hooks"], [(f["kind"], f["owner"]) for f in r.findings]
    (f,) = r.findings
    assert f["sites"][:2] == [str(tmp_path / "logsetup.py") + ":9", r.site("caller")]  # the add, then its caller
    assert f["owner"] == "Logger 'train'.handlers" and f["evidence"]["function"] == "a StreamHandler"
    assert "is added again at every iteration" in r.text and "removeHandler()" in r.text, r.explain()


def test_a_trainer_that_subscribes_its_own_method_once_is_clean(tmp_path: Path) -> None:
    # trainer -> bus -> bound method -> trainer is a cycle, made once and freed once when the run is over
    (tmp_path / "events.py").write_text(EVENTS)
    r = run_script(
        tmp_path,
        """
        from events import EventBus


        class Trainer:
            def __init__(self, bus):
                self.bus = bus
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.best = float("inf")
                bus.subscribe("loss", self.on_loss)

            def on_loss(self, step, value):
                self.best = min(self.best, value)

            def train(self, steps):
                for step in range(steps):
                    x, y = batch(step)
                    self.opt.zero_grad()
                    loss = ag.cross_entropy(self.model(x), y)
                    loss.backward()
                    self.opt.step()
                    self.bus.publish("loss", step=step, value=loss.item())


        def main():
            Trainer(EventBus()).train(150)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


def test_a_hook_on_each_of_twelve_parameters_is_one_finding_over_all_their_lists(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def record(grad):
            return grad


        def main():
            model = make_model(sizes=(16, 32, 32, 32, 32, 32, 4))  # six layers, twelve parameters
            opt = make_optimizer(model)
            for step in range(400):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                for p in model.parameters():
                    p.register_hook(record)  # culprit
                loss.backward()
                opt.step()


        if __name__ == "__main__":
            main()
        """,
    )
    f = hooks_finding(r)  # one finding, however a scan orders the twelve lists
    assert f["evidence"]["lists"] == 12 and f["evidence"]["entries_per_iteration"] == 12.0
    assert f["evidence"]["entries"] >= 12 * 300  # grown on since they were counted


def test_closures_that_each_keep_an_array_are_growth_not_hooks(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            pending = []
            for step in range(300):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                snap = np.array(model.layers[0].weight.data)  # a copy of the weights
                pending.append(lambda s=snap: float(s.mean()))  # culprit
            print(len(pending))


        if __name__ == "__main__":
            main()
        """,
    )
    assert r.rc == 1, r.explain()
    assert [f["kind"] for f in r.findings] == ["growth"], [(f["kind"], f["owner"]) for f in r.findings]
    assert r.findings[0]["owner"] == "local 'pending' of main()" and r.findings[0]["sites"][0] == r.site()


@pytest.mark.parametrize("flush_every", [30, 64])
def test_callbacks_queued_each_step_and_flushed_every_few_steps_are_clean(tmp_path: Path, flush_every: int) -> None:
    # between two scans 16 iterations apart the queue grows by one function a step, as a pile-up does; the
    # scan after that finds it short again: a buffer, not a leak
    r = run_script(
        tmp_path,
        """
        class Trainer:
            def __init__(self):
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.pending = []
                self.updates = 0

            def flush(self):
                values = [cb() for cb in self.pending]
                self.pending.clear()
                return sum(values)

            def step(self, step):
                x, y = batch(step)
                self.opt.zero_grad()
                loss = ag.cross_entropy(self.model(x), y)
                loss.backward()
                self.opt.step()
                self.updates += 1
                value = loss.item()
                self.pending.append(lambda v=value: v)
                if self.updates % FLUSH_EVERY == 0:
                    self.flush()


        def main():
            trainer = Trainer()
            for step in range(130):
                trainer.step(step)


        if __name__ == "__main__":
            main()
        """.replace("FLUSH_EVERY", str(flush_every)),
    )
    assert_clean(r)


def test_a_callback_pile_up_in_a_short_run_is_still_reported(tmp_path: Path) -> None:
    # 60 steps: the scan that would confirm the pile-up falls after the end; the list, a local of main(),
    # is gone by then, so it is reported as it was seen
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            callbacks = []
            for step in range(60):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                callbacks.append(lambda: None)  # culprit
                for cb in callbacks:
                    cb()


        if __name__ == "__main__":
            main()
        """,
    )
    hooks_finding(r)


def test_hooks_registered_every_epoch_with_their_handles_kept_are_a_pile_up(tmp_path: Path) -> None:
    # the handles list is what grows (one handle per parameter per epoch): each handle whose hook is still
    # registered counts as that hook, so the list reads as the hook list it is
    r = run_script(
        tmp_path,
        """
        class GradLogger:
            def __init__(self, model):
                self.model = model
                self.total = 0.0
                self.handles = []

            def record(self, grad):
                self.total += float(grad.sum().item())

            def attach(self):
                for p in self.model.parameters():
                    self.handles.append(p.register_hook(self.record))  # culprit


        def main():
            model = make_model()
            opt = make_optimizer(model)
            logger = GradLogger(model)
            step = 0
            for epoch in range(40):
                logger.attach()
                for _ in range(8):
                    x, y = batch(step)
                    opt.zero_grad()
                    loss = ag.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                    step += 1


        if __name__ == "__main__":
            main()
        """,
    )
    assert r.rc == 1, r.explain()
    found = [f for f in r.findings if f["kind"] == "accumulated_hooks"]
    assert len(found) == 1 and found[0]["owner"] == "GradLogger.handles", [(f["kind"], f["owner"]) for f in r.findings]
    assert found[0]["evidence"]["function"] == "GradLogger.record()"
    assert "registered again as the loop runs" in r.text, r.explain()  # once an epoch, not at every iteration
    # 4 parameters, 40 epochs: 160 handles; the count is not a whole epoch's entries read as one iteration's
    assert 100 <= found[0]["evidence"]["entries"] <= 240, found[0]["evidence"]


def test_hooks_registered_every_epoch_are_one_finding_not_also_growth_held_by_the_optimizer(tmp_path: Path) -> None:
    # each parameter's own hook list grows by one an epoch, too slowly to read as a hook list by itself: it is
    # the same pile-up (AdamW's state reaches every parameter, and through it that list), not growth of its own
    r = run_script(
        tmp_path,
        """
        class NormLogger:
            def __init__(self, model):
                self.model = model
                self.norms = {}
                self.handles = []

            def _record(self, name, grad):
                self.norms[name] = float((grad * grad).sum().item())

            def attach(self):
                for name, p in self.model.named_parameters():
                    self.handles.append(p.register_hook(lambda g, name=name: self._record(name, g)))  # culprit


        class Experiment:
            def __init__(self):
                self.model = make_model(sizes=(16, 48, 48, 4))
                self.opt = ag.optim.AdamW(self.model.parameters(), lr=3e-3)
                self.logger = NormLogger(self.model)

            def run_epoch(self, epoch):
                for i in range(8):
                    x, y = batch(epoch * 8 + i)
                    loss = ag.cross_entropy(self.model(x), y)
                    self.opt.zero_grad()
                    loss.backward()
                    self.opt.step()

            def run(self, epochs):
                for epoch in range(epochs):
                    self.logger.attach()
                    self.run_epoch(epoch)


        if __name__ == "__main__":
            Experiment().run(40)
        """,
    )
    assert r.rc == 1, r.explain()
    kinds = [(f["kind"], f["owner"]) for f in r.findings if f["severity"] == "error"]
    assert kinds == [("accumulated_hooks", "NormLogger.handles")], kinds
