"""benchmarks/sda_paper.py: when a missed target reads "not at this scale" (SDA below the reference's
sampler steps or training budget) rather than "no"."""

from types import SimpleNamespace

from benchmark_scripts import load_benchmark


def fake_sda(steps, epochs, windows):
    return SimpleNamespace(steps=steps, training_log={"train_loss": [1.0] * epochs, "windows": windows})


def test_below_reference_names_steps_and_training():
    m = load_benchmark("sda_paper")
    assert m.below_reference(fake_sda(256, 1024, 65536)) == []
    assert m.below_reference(fake_sda(256, 2048, 65536)) == []
    why = m.below_reference(fake_sda(64, 1024, 65536))
    assert len(why) == 1 and "steps 64" in why[0]
    why = m.below_reference(fake_sda(256, 100, 60000))
    assert len(why) == 1 and "training" in why[0]
    assert len(m.below_reference(fake_sda(128, 10, 1000))) == 2


def test_verdict():
    m = load_benchmark("sda_paper")
    assert m.verdict(1.2, 1.0, 1.25, []) == "yes"
    assert m.verdict(1.2, 1.0, 1.25, ["sampler steps 64 < 256"]) == "yes"
    assert m.verdict(1.3, 1.0, 1.25, []) == "no"
    assert m.verdict(1.3, 1.0, 1.25, ["sampler steps 64 < 256"]) == "not at this scale"
    assert m.verdict(1.6, 1.0, 1.5, []) == "no"
