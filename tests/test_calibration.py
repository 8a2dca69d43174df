"""The temperature fit and the calibration error, on logits whose calibration is known."""

from __future__ import annotations

import numpy as np

from trainer.calibration import expected_calibration_error, fit_temperature, softmax, vote_calibration_error


def test_an_overconfident_model_is_cooled_to_the_temperature_that_made_it():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (4000, 7))
    p = softmax(true_logits)
    labels = np.array([rng.choice(7, p=row) for row in p])  # drawn from the true probabilities
    overconfident = true_logits * 2.5  # the same ranking, too sure of itself
    t = fit_temperature(overconfident, p)
    assert abs(t - 2.5) < 0.05
    before = expected_calibration_error(softmax(overconfident), labels)
    after = expected_calibration_error(softmax(overconfident, t), labels)
    assert before > 0.1 and after < 0.03, (before, after)
    assert expected_calibration_error(np.eye(7)[labels], labels) == 0.0  # sure and always right


def test_vote_calibration_measures_confidence_against_the_share_of_people_who_agree():
    rng = np.random.default_rng(1)
    shares = rng.dirichlet(np.full(7, 0.5), 3000)  # each face's share of votes per class
    assert vote_calibration_error(shares, shares) < 1e-9  # confidence = the top class's share
    sure = np.eye(7)[shares.argmax(axis=1)]  # the same picks, always at confidence 1
    gap = vote_calibration_error(sure, shares)
    assert abs(gap - (1 - shares.max(axis=1).mean())) < 1e-9
    # a face most people call one thing: right by the majority, but 6 of 10 voters is not confidence 1
    assert expected_calibration_error(sure, shares.argmax(axis=1)) == 0.0 and gap > 0.3
