"""Fitting baseline: landmarks recovered against the synthetic ground truth, mesh closer than the mean shape, input errors."""
import pytest
import torch
from facebench.core import InputError
from facebench.models.builtin import builtin_head
from facebench.synth import SyntheticFaces, SynthConfig
from facebench.n2f.fit import fit, FitConfig

def test_fit_recovers_landmarks_and_beats_the_mean_shape():
    head = builtin_head(n_vertices=500, n_shape=8, n_expression=6)
    b = SyntheticFaces(head, SynthConfig(image_size=32, batch_size=2), seed=1).batch(0)
    res = fit(head, b.normal, b.face_mask, b.landmarks, b.camera.focal, b.camera.principal, FitConfig(coarse_steps=10, fine_steps=20, lr=3e-2))
    uv, _ = res.output.camera(32).project(head.from_params(res.params).landmarks)
    err_px = (uv - b.landmarks).norm(dim=-1).mean()
    start_px = (b.landmarks - b.landmarks.mean(1, keepdim=True)).norm(dim=-1).mean()
    assert err_px < 0.25 * start_px, (err_px, start_px)
    gt = head.from_params(b.params).vertices
    assert (head.from_params(res.params).vertices - gt).norm(dim=-1).mean() < (head.neutral(2).vertices - gt).norm(dim=-1).mean()
    assert res.fps > 0 and len(res.losses) == 30
    with pytest.raises(InputError, match='face_mask'):
        fit(head, b.normal, b.face_mask[..., :16, :16], b.landmarks, b.camera.focal, b.camera.principal)
