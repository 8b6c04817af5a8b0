"""agcore.save / agcore.load: checkpoints round-trip without pickle; nothing in a file can run code."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import agcore as ag
import agcore.nn as nn


def test_a_checkpoint_round_trips(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    opt = ag.optim.AdamW(model.parameters(), lr=1e-3)
    model(ag.randn(2, 3)).sum().backward()
    opt.step()
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "iter_num": 2**60,
        "best": float("inf"),
        "nan": float("nan"),
        "betas": (0.9, 0.95),
        "names": ["a", None, True],
        "array": np.arange(3, dtype=np.int16),
        "scalar": np.float32(1.5),
        "param": nn.Parameter(ag.ones(2)),
    }
    for target in (tmp_path / "ckpt.pt", io.BytesIO()):
        ag.save(checkpoint, target)
        if isinstance(target, io.BytesIO):
            target.seek(0)
        back = ag.load(target)
        assert isinstance(back["model"], OrderedDict) and list(back["model"]) == list(checkpoint["model"])
        for key, value in checkpoint["model"].items():
            got = back["model"][key]
            assert isinstance(got, ag.Tensor) and got.dtype == value.dtype
            np.testing.assert_array_equal(got.numpy(), value.numpy())
        assert back["optimizer"]["param_groups"] == checkpoint["optimizer"]["param_groups"]
        assert sorted(back["optimizer"]["state"]) == [0, 1, 2, 3]  # integer keys stay integers
        np.testing.assert_array_equal(
            back["optimizer"]["state"][0]["exp_avg"], checkpoint["optimizer"]["state"][0]["exp_avg"]
        )
        assert back["iter_num"] == 2**60 and back["best"] == math.inf and math.isnan(back["nan"])
        assert back["betas"] == (0.9, 0.95) and back["names"] == ["a", None, True]
        assert back["array"].dtype == np.int16 and back["scalar"] == np.float32(1.5)
        assert isinstance(back["param"], nn.Parameter) and back["param"].requires_grad


def test_the_file_is_json_and_npy_only(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    ag.save({"w": ag.zeros(2)}, path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["arrays/0.npy", "structure.json"]
        assert json.loads(z.read("structure.json"))["format"] == "agcore-save/1"


def test_a_pickled_array_in_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("structure.json", json.dumps({"format": "agcore-save/1", "object": {"ndarray": 0}}))
        z.writestr("arrays/0.npy", buf.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        ag.load(path)


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"cannot store obj\['model'\].*Linear.*state_dict"):
        ag.save({"model": nn.Linear(2, 2)}, io.BytesIO())
    not_zip = tmp_path / "notes.txt"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not a file written by agcore.save"):
        ag.load(not_zip)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("data.pkl", b"")
    with pytest.raises(ValueError, match="no structure.json"):
        ag.load(other)
