"""Hooks and callbacks registered again at every step, as people write them, run under ``memcheck run``.

Each entry weighs a few dozen bytes, so no memory signal is certain in a short run; what gives
them away is a hook list that grows with the iterations by one function again and again. Their
twins register once, or remove what they register, and must stay clean.
"""

from __future__ import annotations

from pathlib import Path

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
