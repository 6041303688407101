"""Rotation conversions checked against scipy.spatial.transform.Rotation (an independent implementation)."""
import numpy as np, pytest, torch
from scipy.spatial.transform import Rotation
from facebench.core import InputError
from facebench.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, rotation_6d_to_matrix, matrix_to_rotation_6d,
                                 euler_to_matrix, matrix_to_euler, matrix_to_quaternion)

rng = np.random.default_rng(0)

def random_rotvecs(n, max_angle=np.pi - 1e-3):
    axis = rng.normal(size=(n, 3)); axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(0, max_angle, size=(n, 1))

def test_axis_angle_matches_scipy():
    rv = random_rotvecs(500)
    R = axis_angle_to_matrix(torch.from_numpy(rv)).numpy()
    np.testing.assert_allclose(R, Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)

def test_small_and_zero_angles_are_exact_and_have_finite_gradients():
    rv = np.concatenate([random_rotvecs(50, 1e-5), np.zeros((1, 3))])
    x = torch.from_numpy(rv).requires_grad_()
    R = axis_angle_to_matrix(x)
    np.testing.assert_allclose(R.detach().numpy(), Rotation.from_rotvec(rv).as_matrix(), atol=1e-14)
    R.sum().backward()
    assert torch.isfinite(x.grad).all()
    # d/dw of R at identity is the skew generator: sum over entries is 0 for each axis
    np.testing.assert_allclose(x.grad[-1].numpy(), 0, atol=1e-12)

def test_matrix_to_axis_angle_matches_scipy_including_near_pi():
    rv = np.concatenate([random_rotvecs(300), random_rotvecs(20, np.pi) * 0 + np.array([[np.pi - 1e-7, 0, 0]])])
    R = Rotation.from_rotvec(rv).as_matrix()
    got = matrix_to_axis_angle(torch.from_numpy(R)).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), R, atol=1e-9)
    q = matrix_to_quaternion(torch.from_numpy(R)).numpy()
    ref = Rotation.from_matrix(R).as_quat(scalar_first=True) if 'scalar_first' in Rotation.as_quat.__doc__ else Rotation.from_matrix(R).as_quat()[:, [3, 0, 1, 2]]
    ref = np.where(ref[:, :1] < 0, -ref, ref)
    np.testing.assert_allclose(np.abs(q), np.abs(ref), atol=1e-9)

def test_euler_matches_scipy_extrinsic_xyz():
    e = rng.uniform(-80, 80, size=(200, 3))
    R = euler_to_matrix(torch.from_numpy(e)).numpy()
    np.testing.assert_allclose(R, Rotation.from_euler('xyz', e, degrees=True).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(matrix_to_euler(torch.from_numpy(R)).numpy(), e, atol=1e-9)

def test_6d_round_trip_and_gram_schmidt():
    R = torch.from_numpy(Rotation.random(100, random_state=1).as_matrix())
    np.testing.assert_allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(R)).numpy(), R.numpy(), atol=1e-12)
    # an arbitrary 6D vector maps to a proper rotation
    M = rotation_6d_to_matrix(torch.randn(50, 6, dtype=torch.float64))
    np.testing.assert_allclose((M.transpose(-1, -2) @ M).numpy(), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(torch.linalg.det(M).numpy(), 1, atol=1e-12)

def test_float32_batch_shapes():
    x = torch.randn(4, 5, 3)
    assert axis_angle_to_matrix(x).shape == (4, 5, 3, 3) and axis_angle_to_matrix(x).dtype == torch.float32

@pytest.mark.parametrize('fn,bad', [(axis_angle_to_matrix, torch.zeros(4, 4)), (rotation_6d_to_matrix, torch.zeros(3, 5)),
                                    (matrix_to_axis_angle, torch.zeros(2, 3, 4)), (euler_to_matrix, torch.zeros(2))])
def test_wrong_shapes_are_named(fn, bad):
    with pytest.raises(InputError, match='must have shape'):
        fn(bad)
