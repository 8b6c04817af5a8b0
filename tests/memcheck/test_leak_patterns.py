"""Leaks as people write them, run unmodified under ``python -m memcheck run``: the holder and the culprit line.

Each script is a small training program the way it is usually written: the loop
inside ``main()``, state on objects, the model and data in a helper module next
to it, and no ``import memcheck``. A leaky script must exit 1 with a report that
names who holds the memory and the line that put it there (found by a
``# culprit`` comment); its fixed twin, and the bounded patterns (a
``deque(maxlen=...)``, a cache cleared every 20 steps, a warm-up), must exit 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

#: the helper module every script imports: model, data, optimizer (written next to the script)
TRAINLIB = """
import numpy as np
import agcore as ag


def make_model(sizes=(16, 32, 4), seed=0):
    ag.manual_seed(seed)
    return ag.nn.MLP(list(sizes))


def make_optimizer(model, lr=0.05):
    return ag.optim.SGD(model.parameters(), lr=lr)


def batch(step, n=8, features=16, classes=4):
    rng = np.random.default_rng(step % 7)
    x = ag.tensor(rng.standard_normal((n, features)).astype("float32"))
    y = rng.integers(0, classes, n)
    return x, y
"""

_HEADER = """
import numpy as np
import agcore as ag
from trainlib import batch, make_model, make_optimizer
"""


class Result:
    """One ``memcheck run``: exit code, terminal text (whitespace folded), the JSON report."""

    def __init__(self, proc: subprocess.CompletedProcess, report: dict[str, Any], script: Path) -> None:
        self.rc = proc.returncode
        self.raw = proc.stdout + proc.stderr
        self.text = " ".join(self.raw.split())  # a name the terminal wrapped reads whole again
        self.report = report
        self.script = script

    @property
    def findings(self) -> list[dict[str, Any]]:
        return list(self.report.get("findings", []))

    def line(self, marker: str = "culprit") -> int:
        lines = self.script.read_text().splitlines()
        hits = [n for n, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}")]
        assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times"
        return hits[0]

    def site(self, marker: str = "culprit") -> str:
        return f"{self.script}:{self.line(marker)}"

    def explain(self) -> str:
        return f"exit {self.rc}\n{self.raw[-4000:]}"


def run_script(tmp_path: Path, body: str, name: str = "script.py") -> Result:
    """Write the helper module and ``body`` (a script) to ``tmp_path``; run it under memcheck there."""
    (tmp_path / "trainlib.py").write_text(TRAINLIB)
    script = tmp_path / name
    script.write_text(_HEADER + textwrap.dedent(body))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120", "NO_COLOR": "1"}
    env.pop("MEMCHECK_OUTPUT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "memcheck", "run", name, "-o", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    reports = sorted(out.glob("*.json")) if out.is_dir() else []
    report = json.loads(reports[-1].read_text()) if reports else {}
    return Result(proc, report, script)


def assert_leak(r: Result, holder: str | None, kinds: tuple[str, ...] = ("retained_graph", "growth")) -> None:
    """Exit 1; a finding of ``kinds`` names ``holder`` and puts the culprit line first; the terminal says both."""
    assert r.rc == 1, r.explain()
    found = [f for f in r.findings if f["kind"] in kinds]
    assert found, f"no {kinds} finding\n{r.explain()}"
    if holder is not None:
        assert any(f["owner"] == holder for f in found), [f["owner"] for f in found]
        assert holder in r.text, r.explain()
    assert any(f["sites"] and f["sites"][0] == r.site() for f in found), [f["sites"][:3] for f in found]
    assert f"script.py:{r.line()}" in r.text, r.explain()
    for f in r.findings:  # never memcheck's, agcore's or a library's line, never a def line or a docstring
        for where in f["sites"]:
            path, _, line = where.rpartition(":")
            assert Path(path).parent == r.script.parent, where
            text = Path(path).read_text().splitlines()[int(line) - 1].strip()
            assert not text.startswith(("def ", "class ", '"""', "@")), where


def assert_clean(r: Result) -> None:
    assert r.rc == 0, r.explain()
    assert r.findings == [], [(f["kind"], f["owner"], f["sites"][:2]) for f in r.findings]


# -- graphs kept alive ------------------------------------------------------------------------


def test_history_of_loss_tensors_in_main(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            history = []
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                history.append(loss)  # culprit
            print("last loss", history[-1].item())


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'history' of main()")
    graph = next(f for f in r.findings if f["kind"] == "retained_graph")
    assert graph["evidence"]["holder"]["executed"] is True  # the line seen running, not a syntactic guess


def test_curve_kept_on_a_trainer_object(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Trainer:
            def __init__(self):
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.curve = []

            def step(self, step):
                x, y = batch(step)
                self.opt.zero_grad()
                loss = ag.cross_entropy(self.model(x), y)
                loss.backward()
                self.opt.step()
                self.curve.append(loss)  # culprit


        def main():
            trainer = Trainer()
            for step in range(150):
                trainer.step(step)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "Trainer.curve")


def test_running_total_of_losses(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            total = 0.0
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                total = total + loss  # culprit
            print("mean loss", total.item() / 150)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'total' of main()")


def test_metric_meter_fed_loss_tensors(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class AverageMeter:
            def __init__(self):
                self.total = 0.0
                self.count = 0

            def update(self, value, n=1):
                self.total = self.total + value * n  # culprit
                self.count += n

            @property
            def avg(self):
                return self.total / max(self.count, 1)


        def main():
            model = make_model()
            opt = make_optimizer(model)
            meter = AverageMeter()
            for step in range(50):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                meter.update(loss)
            print("avg", float(meter.avg.item()))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "AverageMeter.total")


def test_recurrent_state_carried_across_batches_without_detach(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Cell:
            def __init__(self):
                ag.manual_seed(1)
                self.wx = ag.nn.Linear(16, 16)
                self.wh = ag.nn.Linear(16, 16)

            def __call__(self, x, h):
                return (self.wx(x) + self.wh(h)).tanh()


        def main():
            model = make_model()
            opt = make_optimizer(model)
            tracker = Cell()  # a stateful monitor over the stream of batches
            h = ag.zeros(8, 16)
            for step in range(100):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                h = tracker(x, h)  # culprit
                drift = h.mean().item()
            print("drift", drift)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'h' of main()")


def test_outputs_cached_by_id_of_the_tensor(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            outputs = {}
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                out = model(x)
                outputs[id(out)] = out  # culprit
                loss = ag.cross_entropy(out, y)
                loss.backward()
                opt.step()
            print(len(outputs))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'outputs' of main()")


def test_evaluation_outputs_kept_without_no_grad_are_a_retained_graph_not_an_inplace_error(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            predictions = []
            for step in range(120):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()  # changes the weights the kept evaluation graphs saved
                if step % 2 == 0:
                    predictions.append(model(x))  # culprit
            print(len(predictions))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'predictions' of main()")
    assert not [f for f in r.findings if f["kind"] == "inplace_saved" and f["severity"] == "error"], r.findings


def test_per_step_records_of_python_objects_are_found(tmp_path: Path) -> None:
    # 600 steps (~0.16 s): at 300 (~80 ms) the session's clock took ~14 samples after warm-up, and the
    # py_blocks slope (10 needed) was certain in only ~7 runs of 8, at this commit and before it alike
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            log = []
            for step in range(600):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                log.append({"step": step, "loss": loss.item(), "lr": 0.05, "tag": f"s{step}"})  # culprit
            print(len(log))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'log' of main()", kinds=("growth",))


# the copies' parameters ask for a look while they live (memcheck.session: a model copy kept per epoch), and
# a holder that the user's code reaches is chosen over a library's table (re's pattern cache, grown by an import)
def test_model_snapshots_made_with_deepcopy_are_counted(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        import copy


        def main():
            model = make_model()
            opt = make_optimizer(model)
            snapshots = []
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                if step % 5 == 0:
                    snapshots.append(copy.deepcopy(model))  # culprit
            print(len(snapshots))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'snapshots' of main()", kinds=("growth",))


def test_a_forward_hook_registered_every_step(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            outputs = []
            for step in range(100):
                x, y = batch(step)
                model.register_forward_hook(lambda module, inputs, output: outputs.append(output))  # culprit
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
            print(len(outputs))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'outputs' of main()")


def test_an_lru_cache_on_a_method_fed_tensors(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        import functools


        class Featurizer:
            def __init__(self):
                self.model = make_model()

            @functools.lru_cache(maxsize=None)
            def features(self, step):
                x, _ = batch(step)
                return self.model(x)  # the graph of each step's features is cached with them


        def main():
            feats = Featurizer()
            opt = make_optimizer(feats.model)
            for step in range(150):
                _, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(feats.features(step), y)  # culprit
                loss.backward()
                opt.step()


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "lru_cache of Featurizer.features()")


def test_exceptions_stored_with_their_tracebacks(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def check(loss, step):
            if step % 2 == 0:
                raise ValueError(f"odd loss at {step}")


        def main():
            model = make_model()
            opt = make_optimizer(model)
            failures = []
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                try:
                    check(loss, step)
                except ValueError as err:
                    failures.append(err)  # culprit
            print(len(failures))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, None)  # the graph is a frame local of the stored traceback: named as what the user stored
    graph = next(f for f in r.findings if f["kind"] == "retained_graph")
    assert graph["owner"] in ("a stored traceback", "a stored ValueError") and graph["owner"] in r.text
    assert "local 'failures' of main()" in " ".join(hop["label"] for hop in graph["evidence"]["chain"])


# -- memory agcore did not make, and aliasing through a container ---------------------------------


def test_numpy_arrays_appended_each_step_are_found_within_300_iterations(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            snapshots = []
            for step in range(300):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                snapshots.append(np.full(256, loss.item(), dtype=np.float32))  # culprit
            print(len(snapshots))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'snapshots' of main()", kinds=("growth",))
    growth = next(f for f in r.findings if f["kind"] == "growth")
    assert 700 <= growth["evidence"]["bytes_per_iteration"] <= 2000  # 1 KiB of array data per iteration
    assert r.report["iterations"] <= 300


def test_the_same_gradient_buffer_appended_every_step(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            first = model.parameters()[0]
            grads = []
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad(set_to_none=False)  # zeroed and refilled in place: one buffer
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                grads.append(first.grad)  # culprit
            print(len(grads))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "local 'grads' of main()", kinds=("aliased_buffers",))


def test_a_tensor_logged_through_a_handler_names_the_append_and_the_call(tmp_path: Path) -> None:
    # the line that grows the list is the handler's; the user's own line is the call the logging library
    # passes on: both are named, the append first
    r = run_script(
        tmp_path,
        """
        import logging


        class CollectingHandler(logging.Handler):
            def __init__(self):
                super().__init__()
                self.records = []

            def emit(self, record):
                self.records.append(record)  # culprit


        def main():
            log = logging.getLogger("train")
            log.setLevel(logging.INFO)
            log.propagate = False
            handler = CollectingHandler()
            log.addHandler(handler)
            model = make_model()
            opt = make_optimizer(model)
            for step in range(600):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                log.info("step %d loss %s", step, loss)  # caller
            print(len(handler.records))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "CollectingHandler.records", kinds=("retained_graph",))
    (found,) = [f for f in r.findings if f["kind"] == "retained_graph"]
    assert found["sites"][:2] == [r.site(), r.site("caller")], found["sites"]
    assert f"script.py:{r.line('caller')}" in r.text, r.explain()


def test_a_storage_wrapped_into_a_second_leaf_late_in_the_run(tmp_path: Path) -> None:
    # the wrap happens long after the first 64 fully followed iterations, in a gap between sampled
    # windows, and both gradients live only while the second epoch runs: gone by the end of the run
    r = run_script(
        tmp_path,
        """
        class Trainer:
            def __init__(self):
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.weight = self.model.parameters()[0]

            def weight_for(self, epoch):
                if epoch == 0:
                    return self.weight
                return ag.as_tensor(self.weight.data, requires_grad=True)  # culprit

            def epoch(self, epoch, steps=1500):
                w = self.weight_for(epoch)
                for step in range(steps):
                    x, _ = batch(step)
                    self.opt.zero_grad(set_to_none=False)
                    loss = ((x @ w.T) ** 2).mean() + (self.model(x) ** 2).mean()
                    loss.backward()
                    self.opt.step()
                return float(loss)


        def main():
            trainer = Trainer()
            for epoch in range(2):
                print(epoch, trainer.epoch(epoch))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, None, kinds=("double_grad",))


def test_a_fresh_input_leaf_every_step_is_clean(tmp_path: Path) -> None:
    # input gradients (saliency, adversarial steps): a new leaf on a new storage each step is no double gradient
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            for step in range(1500):
                x, y = batch(step)
                x = ag.tensor(x.data.copy(), requires_grad=True)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                saliency = float(np.abs(x.grad).max())
                opt.step()
            print(saliency)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


def test_a_caught_second_backward_is_still_a_finding(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            skipped = 0
            for step in range(40):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                if step == 20:
                    try:
                        loss.backward()  # culprit
                    except ag.GraphReleasedError:
                        skipped += 1
                opt.step()
            print("skipped", skipped)


        if __name__ == "__main__":
            main()
        """,
    )
    assert r.rc == 1, r.explain()
    found = [f for f in r.findings if f["evidence"].get("error") == "GraphReleasedError"]
    assert found and found[0]["severity"] == "error" and found[0]["evidence"]["caught"] is True, r.findings
    assert found[0]["sites"][0] == r.site() and found[0]["owner"] == "loss"  # what backward ran from
    assert f"script.py:{r.line()}" in r.text, r.explain()


def test_an_inplace_change_caught_at_every_step_says_how_often_and_names_the_tensor(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Trainer:
            def __init__(self):
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.skipped = 0

            def step(self, step):
                x, y = batch(step)
                self.opt.zero_grad()
                logits = self.model(x)
                loss = ag.cross_entropy(logits, y) + 1e-3 * (logits * logits).mean()
                logits.mul_(0.5)  # culprit
                try:
                    loss.backward()
                except ag.InplaceModifiedError:
                    self.skipped += 1
                    return
                self.opt.step()


        def main():
            trainer = Trainer()
            for step in range(120):
                trainer.step(step)


        if __name__ == "__main__":
            main()
        """,
    )
    assert r.rc == 1, r.explain()
    (f,) = [f for f in r.findings if f["kind"] == "inplace_saved"]
    assert f["sites"][0] == r.site() and f["owner"] == "logits"
    assert f["evidence"]["times"] == 120 and f["evidence"]["caught"] is True
    assert "Backward failed 120 times" in r.text and "caught it each time" in r.text, r.explain()
    assert str(tmp_path) not in f["message"]  # its sites read as the at lines do


# -- must stay silent -----------------------------------------------------------------------------


def test_fixed_history_trainer_total_and_cache_are_clean(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Trainer:
            def __init__(self):
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.curve = []

            def step(self, step):
                x, y = batch(step)
                self.opt.zero_grad()
                loss = ag.cross_entropy(self.model(x), y)
                loss.backward()
                self.opt.step()
                self.curve.append(loss.item())
                return loss


        def main():
            trainer = Trainer()
            history = []
            total = 0.0
            outputs = {}
            for step in range(150):
                loss = trainer.step(step)
                history.append(loss.item())
                total = total + loss.item()
                outputs[step % 4] = loss.detach()
            print(total / 150, len(history), len(outputs))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


def test_detached_hidden_state_is_clean(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Cell:
            def __init__(self):
                ag.manual_seed(1)
                self.wx = ag.nn.Linear(16, 16)
                self.wh = ag.nn.Linear(16, 16)

            def __call__(self, x, h):
                return (self.wx(x) + self.wh(h)).tanh()


        def main():
            model = make_model()
            opt = make_optimizer(model)
            tracker = Cell()
            h = ag.zeros(8, 16)
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                h = tracker(x, h).detach()
                drift = h.mean().item()
            print("drift", drift)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


def test_a_second_phase_after_the_training_loop_is_clean(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            history = []
            for step in range(120):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                history.append(loss.item())
            rng = np.random.default_rng(0)
            wx, wh = ag.nn.Linear(8, 16), ag.nn.Linear(16, 16)
            opt = ag.optim.SGD([*wx.parameters(), *wh.parameters()], lr=0.01)
            h = ag.zeros(4, 16)
            for step in range(100):
                opt.zero_grad()
                h = (wx(ag.tensor(rng.standard_normal((4, 8)).astype("float32"))) + wh(h.detach())).tanh()
                h.sum().backward()
                opt.step()
            print(len(history))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


def test_replay_buffer_with_maxlen_is_clean(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        from collections import deque


        def main():
            model = make_model()
            opt = make_optimizer(model)
            replay = deque(maxlen=50)
            for step in range(300):
                x, y = batch(step)
                replay.append((x.detach(), y, np.full(256, step, dtype=np.float32)))
                opt.zero_grad()
                loss = ag.cross_entropy(model(replay[-1][0]), replay[-1][1])
                loss.backward()
                opt.step()
            print(len(replay))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


def test_cache_cleared_every_20_steps_is_clean(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            cache = []
            for step in range(300):
                x, y = batch(step)
                opt.zero_grad()
                out = model(x)
                cache.append((out.detach(), np.ones(256, dtype=np.float32)))
                if len(cache) == 20:
                    cache.clear()
                loss = ag.cross_entropy(out, y)
                loss.backward()
                opt.step()


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


def test_warm_up_that_allocates_for_30_iterations_then_runs_flat_is_clean(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def main():
            model = make_model()
            opt = make_optimizer(model)
            buffers = []
            for step in range(300):
                if step < 30:
                    buffers.append(np.ones(1024, dtype=np.float32))  # warm-up: a pool filled once
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
            print(len(buffers))


        if __name__ == "__main__":
            main()
        """,
    )
    assert_clean(r)


# -- found by trying memcheck on scripts written the ordinary way (QA) -----------------------------


def test_a_mutable_default_argument_is_named_as_one(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        def track(value, name="loss", history=[]):
            history.append(value)  # culprit
            return len(history)


        def main():
            model = make_model()
            opt = make_optimizer(model)
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                track(loss)
            print("done")


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "default argument 'history' of track()")


def test_a_dict_keyed_by_an_attribute_names_the_store_line(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Model:
            def __init__(self):
                self.net = make_model()
                self.maps = {}
                self.calls = 0

            def __call__(self, x):
                out = self.net(x)
                self.maps[self.calls] = out  # culprit
                self.calls += 1
                return out


        def main():
            model = Model()
            opt = make_optimizer(model.net)
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                ag.cross_entropy(model(x), y).backward()
                opt.step()


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "Model.maps")


def test_a_loss_returned_from_the_step_does_not_hide_the_dict_that_keeps_them(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class Trainer:
            def __init__(self):
                self.model = make_model()
                self.opt = make_optimizer(self.model)
                self.metrics = {}

            def train_step(self, x, y):
                loss = ag.cross_entropy(self.model(x), y)
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                return loss

            def fit(self, steps):
                for step in range(steps):
                    loss = self.train_step(*batch(step))
                    self.metrics[step] = {"loss": loss}  # culprit


        if __name__ == "__main__":
            Trainer().fit(150)
        """,
    )
    assert_leak(r, "Trainer.metrics")
    assert len([f for f in r.findings if f["severity"] == "error"]) == 1  # one bug, one error


def test_cycles_that_hold_graphs_are_one_warning_not_a_retained_graph_error(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class StepState:
            def __init__(self, loss):
                self.loss = loss
                self.on_end = self.finish  # culprit

            def finish(self):
                return self.loss.item()


        def main():
            model = make_model()
            opt = make_optimizer(model)
            for step in range(300):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                StepState(loss)


        if __name__ == "__main__":
            main()
        """,
    )
    kinds = [f["kind"] for f in r.findings]
    assert "ref_cycle" in kinds and "retained_graph" not in kinds, r.explain()
    assert r.rc == 0, r.explain()  # a warning: the collector frees them


def test_a_list_of_closures_that_keep_tensors_is_one_finding(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        class DeferredLogger:
            def __init__(self):
                self.pending = []

            def log(self, value):
                self.pending.append(lambda: float(value.item()))  # culprit


        def main():
            model = make_model()
            opt = make_optimizer(model)
            logger = DeferredLogger()
            for step in range(150):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                logger.log(loss)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "closure variable 'value' of a lambda in DeferredLogger.log()")
    assert len(r.findings) == 1, [(f["kind"], f["owner"]) for f in r.findings]  # not also a growth of .pending


def test_a_bounded_window_of_graphs_is_a_warning(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        from collections import deque


        def main():
            model = make_model()
            opt = make_optimizer(model)
            recent = deque(maxlen=20)
            for step in range(200):
                x, y = batch(step)
                opt.zero_grad()
                loss = ag.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                recent.append(loss)  # culprit


        if __name__ == "__main__":
            main()
        """,
    )
    found = [f for f in r.findings if f["kind"] == "retained_graph"]
    assert found and found[0]["severity"] == "warning" and found[0]["owner"] == "local 'recent' of main()", r.explain()
    assert r.rc == 0, r.explain()  # bounded: it wastes a fixed amount, it does not grow


def test_an_ema_copy_kept_every_epoch_is_named_at_its_true_rate(tmp_path: Path) -> None:
    # one model copy per 60-step epoch: ~180 B per iteration, and no scheduled check need fall between two
    r = run_script(
        tmp_path,
        """
        import copy


        class Trainer:
            def __init__(self):
                self.model = make_model(sizes=(16, 128, 4))
                self.opt = make_optimizer(self.model)
                self.ema = copy.deepcopy(self.model)
                self.ema_by_epoch = {}

            def update_ema(self, decay=0.99):
                with ag.no_grad():
                    for e, p in zip(self.ema.parameters(), self.model.parameters()):
                        e.mul_(decay).add_(p, alpha=1 - decay)

            def fit(self, epochs, steps):
                for epoch in range(epochs):
                    for step in range(steps):
                        x, y = batch(step)
                        self.opt.zero_grad()
                        ag.cross_entropy(self.model(x), y).backward()
                        self.opt.step()
                        self.update_ema()
                    self.ema_by_epoch[epoch] = copy.deepcopy(self.ema)  # culprit


        def main():
            Trainer().fit(epochs=30, steps=60)


        if __name__ == "__main__":
            main()
        """,
    )
    assert_leak(r, "Trainer.ema_by_epoch", kinds=("growth",))
    (f,) = [f for f in r.findings if f["kind"] == "growth"]
    copy_bytes = 4 * (16 * 128 + 128 + 128 * 4 + 4)
    assert f["evidence"]["bytes_per_iteration"] == pytest.approx(copy_bytes / 60, rel=0.25)  # not one per window


def test_a_copy_of_the_model_kept_every_tenth_step_names_the_list(tmp_path: Path) -> None:
    r = run_script(
        tmp_path,
        """
        import copy


        class Trainer:
            def __init__(self):
                self.model = make_model(sizes=(16, 64, 4))
                self.opt = make_optimizer(self.model)
                self.snapshots = []

            def fit(self, steps):
                for step in range(steps):
                    x, y = batch(step)
                    self.opt.zero_grad()
                    ag.cross_entropy(self.model(x), y).backward()
                    self.opt.step()
                    if step % 10 == 0:
                        self.snapshots.append(copy.deepcopy(self.model))  # culprit


        if __name__ == "__main__":
            Trainer().fit(300)
        """,
    )
    assert_leak(r, "Trainer.snapshots", kinds=("growth",))
