"""What the declared dependency ranges promise: the lowest OpenCV runs the edge, and a Raspberry Pi
(64-bit, Python 3.11 bookworm and 3.13 trixie) installs everything from wheels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import FER_EDGE, REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME = PYPROJECT["project"]["dependencies"]
PI_EXTRA = PYPROJECT["project"]["optional-dependencies"]["pi"]
AARCH64 = [f"manylinux_2_{v}_aarch64" for v in range(17, 37)] + ["manylinux2014_aarch64"]


def _pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def _for_python(requirements: list[str], python: str) -> list[str]:
    """The requirements that apply on `python` on a 64-bit Pi, markers evaluated there (pip evaluates
    them for the Python it runs on, whatever --python-version says)."""
    from packaging.requirements import Requirement

    env = {"python_version": python, "python_full_version": f"{python}.0", "platform_machine": "aarch64",
           "sys_platform": "linux", "platform_system": "Linux"}
    reqs = [Requirement(r) for r in requirements]
    return [str(r).split(";")[0] for r in reqs if r.marker is None or r.marker.evaluate(env)]


@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_runtime_resolves_to_aarch64_wheels_for_raspberry_pi_os(tmp_path, python):
    """No source build on a Pi: every runtime dependency has a wheel (metadata only, nothing installed)."""
    report = tmp_path / "report.json"
    platforms = [arg for p in AARCH64 for arg in ("--platform", p)]
    r = _pip("install", "--dry-run", "--ignore-installed", "--only-binary=:all:", *platforms,
             "--python-version", python, "--target", str(tmp_path / "t"), "--report", str(report),
             *_for_python(RUNTIME + PI_EXTRA, python))
    if "Could not fetch URL" in r.stderr or "NewConnectionError" in r.stderr:
        pytest.skip("the package index is not reachable")
    assert r.returncode == 0, r.stderr[-2000:]
    got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert {"numpy", "opencv-python-headless", "ai-edge-litert", "aiohttp", "paho-mqtt", "pillow"} <= set(got)
    if python == "3.11":  # bookworm: Debian's picamera2 needs numpy 1.x in the venv
        assert got["numpy"].startswith("1.")


@pytest.fixture(scope="module")
def lowest_opencv() -> str:
    """OpenCV at the floor pyproject declares, with a numpy it was built for (and tflite-runtime, the
    fallback runtime, which also needs numpy < 2), in a cached folder put first on PYTHONPATH."""
    floor = next(d for d in RUNTIME if d.startswith("opencv-python-headless")).split(">=")[1].split(",")[0]
    target = REPO / ".cache" / f"opencv-{floor}"
    if not (target / "tflite_runtime").is_dir():
        r = _pip("install", "--quiet", "--target", str(target), f"opencv-python-headless~={floor}.0", "numpy<2",
                 "tflite-runtime")
        if r.returncode != 0 and not (target / "tflite_runtime").is_dir():
            pytest.skip(f"cannot install OpenCV {floor}: {r.stderr.strip().splitlines()[-1:]}")
    return str(target)


def test_the_lowest_declared_opencv_runs_predict_and_the_daemon(lowest_opencv, face_image, face_clip, tmp_path):
    env = {**os.environ, "PYTHONPATH": lowest_opencv}
    version = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.__version__)"], env=env,
                             capture_output=True, text=True).stdout.strip()
    assert version.startswith("4.8."), version
    r = subprocess.run([*FER_EDGE, "predict", str(face_image)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout)["faces"][0]["emotion"] == "fear"
    config = tmp_path / "config.yaml"  # the defaults, but a face's first emotion at once: 60 frames at
    config.write_text("tracker:\n  first_event_wait_s: 0\n")  # full speed may pass in under its 1 s wait
    r = subprocess.run([*FER_EDGE, "--source", str(face_clip), "--print", "--fps", "0", "--max-frames", "60"],
                       cwd=REPO, env={**env, "FER_EDGE_CONFIG": str(config)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert any(json.loads(line)["type"] == "event" for line in r.stdout.splitlines())


def test_tflite_runtime_is_the_fallback_when_ai_edge_litert_is_missing(lowest_opencv, face_image):
    code = ("import sys; sys.modules['ai_edge_litert'] = None; import tflite_runtime; "
            "from edge.cli import main; sys.exit(main(['predict', sys.argv[1]]))")
    r = subprocess.run([sys.executable, "-c", code, str(face_image)], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": lowest_opencv}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["faces"][0]["emotion"] == "fear"
    # neither runtime: one clear line
    code = code.replace("import tflite_runtime; ", "sys.modules['tflite_runtime'] = None; ")
    r = subprocess.run([sys.executable, "-c", code, str(face_image)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("fer-edge: error: no TFLite runtime") and r.stderr.count("\n") == 1
