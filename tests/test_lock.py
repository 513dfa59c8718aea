"""The locks in requirements/ agree with pyproject.toml (refresh them with `make lock`).

Every dependency that pyproject.toml asks for, in the core and in each extra a target
installs, must be pinned in that target's lock at a version its specifier accepts. A
dependency added, or a bound raised, without refreshing the lock fails here, before a fresh
machine would install something other than what was tested.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")

# Each lock and the pyproject extras it is resolved from (scripts/lock.sh).
TARGETS = {
    "base.txt": (),
    "cpu.txt": ("diffusion", "cpu", "cluster", "test", "dev"),
    "cuda.txt": ("diffusion", "gpu", "cluster", "test"),
}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(lock: Path) -> dict[str, Version]:
    """Package name → pinned version; every pin carries at least one hash."""
    found: dict[str, Version] = {}
    lines = lock.read_text().splitlines()
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            assert "--hash=sha256:" in lines[i + 1], f"{lock.name}: {name} is pinned without a hash"
            found[name] = Version(match.group(2))
    return found


def requirements_of(extras: tuple[str, ...]) -> list[Requirement]:
    project = pyproject()
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    # Linux x86_64 CPython 3.11 is what the locks are resolved for.
    return [r for r in wanted if r.marker is None or r.marker.evaluate({"python_version": "3.11"})]


@pytest.mark.parametrize(("lock", "extras"), TARGETS.items())
def test_every_dependency_is_pinned_at_a_version_pyproject_accepts(lock, extras):
    pinned = pins(REQUIREMENTS / lock)
    problems = []
    for requirement in requirements_of(extras):
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement} is not in requirements/{lock}")
        elif not requirement.specifier.contains(pinned[name], prereleases=True):
            problems.append(f"{requirement} does not accept {name}=={pinned[name]} in requirements/{lock}")
    assert not problems, "pyproject.toml and the lock disagree; run `make lock`:\n" + "\n".join(problems)


def test_extras_named_in_pyproject_are_all_locked_or_named():
    """A new extra must be added to a target in scripts/lock.sh (and here), or it is never tested."""
    locked = {extra for extras in TARGETS.values() for extra in extras}
    assert set(pyproject()["optional-dependencies"]) - locked == {"training"}  # = art2mus[diffusion]


@pytest.mark.parametrize(
    ("lock", "constraints"), [("cpu.txt", "cpu-constraints.in"), ("cuda.txt", "cuda-constraints.in")]
)
def test_torch_is_the_build_for_the_target(lock, constraints):
    wanted = next(
        Requirement(line)
        for line in (REQUIREMENTS / constraints).read_text().splitlines()
        if line.startswith("torch")
    )
    assert wanted.specifier.contains(pins(REQUIREMENTS / lock)["torch"])
    # The CPU lock must never bring CUDA libraries; the CUDA lock needs them.
    has_cuda = any(name.startswith("nvidia-") for name in pins(REQUIREMENTS / lock))
    assert has_cuda == (lock == "cuda.txt")


def test_the_two_onnxruntime_builds_never_share_a_lock():
    """Both install the module `onnxruntime`; one would overwrite the other's files."""
    for lock in TARGETS:
        names = pins(REQUIREMENTS / lock)
        assert not ("onnxruntime" in names and "onnxruntime-gpu" in names), lock
