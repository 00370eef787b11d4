"""Profile figures of the paper configuration against those measured on the authors' code."""

from __future__ import annotations

import pytest

from orsanet.models import ORSANet, ORSANetConfig
from orsanet.profile import format_profile, official_layout_extra_trainable, profile_model


@pytest.fixture(scope="module")
def large():
    model = ORSANet(ORSANetConfig(size="large"))
    return model, profile_model(model)


def test_parameter_counts_match_the_official_model(large):
    model, profile = large
    total = profile.total
    assert total.trainable == pytest.approx(47.44e6, abs=0.01e6)
    assert sum(r.used for r in profile.components if r.trainable) == total.trainable
    assert (total.trainable + official_layout_extra_trainable(model)) == pytest.approx(60.29e6, abs=0.01e6)
    text = format_profile(profile, model)
    assert "60.29 M trainable" in text and "47.44 M" in text


def test_macs_per_component(large):
    _, profile = large
    macs = {row.name: row.macs / 1e9 for row in profile.components}
    assert macs["image backbone"] == pytest.approx(5.47, abs=0.01)
    assert macs["parsing prior (frozen)"] == pytest.approx(15.43, abs=0.01)
    assert macs["landmark prior (frozen)"] == pytest.approx(0.22, abs=0.01)
    assert macs["SSGM"] == pytest.approx(0.40, abs=0.01)
    assert macs["MCM"] == pytest.approx(1.14, abs=0.01)
    assert profile.trainable_macs / 1e9 == pytest.approx(7.07, abs=0.02)
    assert profile.total.macs / 1e9 == pytest.approx(22.7, abs=0.05)


def test_unused_landmark_head_is_not_counted_as_used(large):
    _, profile = large
    row = next(r for r in profile.components if r.name == "landmark prior (frozen)")
    assert row.used < row.parameters  # the 68-point GDC head only draws pictures
