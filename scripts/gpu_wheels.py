"""The wheels robustlab needs on a GPU machine without network (run by scripts/gpu_wheels.sh).

A GPU machine lent for a few minutes has a CUDA build of torch and a scientific Python stack
but no network: robustlab's remaining dependencies travel to it as wheels, at most 60 MiB.
This resolves robustlab's dependencies for the target (CPython 3.12 on manylinux x86-64 by
default) as if the target's own packages were installed, then downloads only what is missing.

The target's packages take part in the resolution as empty stand-in wheels of their versions
(``NAME-VERSION+have``): the resolver then picks versions that agree with them without ever
fetching the real ones (torch alone would pull gigabytes of CUDA wheels). Packages whose version
the target's list does not give are resolved normally (pip reads a wheel's dependencies by
downloading it) and left out of the result.

    bash scripts/gpu_wheels.sh                   # the GPU image (scripts/gpu_image_packages.txt)
    bash scripts/gpu_wheels.sh --python PYTHON   # that interpreter and what it has installed
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
IMAGE_PACKAGES = ROOT / "scripts" / "gpu_image_packages.txt"
LIMIT_MIB = 60  # the device call carries 64 MiB in all, and the checkout travels with it
# the machine's CUDA stack: never carried, never replaced
NEVER = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")
# installed without its dependencies: torchattacks pins requests~=2.25.1, which it never
# imports, and of its other needs robustlab's use takes torch, numpy, scipy and tqdm, all the
# machine's own (never torchvision)
NO_DEPS = {"torchattacks"}
GPU_TARGET = [
    "--python-version", "3.12.3", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
    "--abi", "none",
    # pip compares a manylinux_2_N tag with these exactly; glibc 2.28 is what the machine's
    # torch wheels need, so a wheel for it or older installs there
    *(f"--platform=manylinux_2_{n}_x86_64" for n in range(28, 16, -1)),
    "--platform=manylinux2014_x86_64", "--platform=manylinux2010_x86_64",
    "--platform=manylinux1_x86_64",
]  # fmt: skip
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = NAME.match(requirement)
    if match is None:
        raise SystemExit(f"gpu_wheels: cannot read the requirement {requirement!r}")
    return canonical(match.group(1))


def image_packages(path: Path) -> dict[str, str | None]:
    """``{name: version or None}`` from a list of ``NAME`` or ``NAME==VERSION`` lines."""
    packages = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            packages[canonical(name)] = version.strip() or None
    return packages


def installed_packages(python: str) -> dict[str, str | None]:
    """What ``python`` has installed, editable projects left out."""
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json", "--exclude-editable"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return {canonical(item["name"]): item["version"] for item in json.loads(listed.stdout)}


def stub_wheel(folder: Path, name: str, version: str) -> Path:
    """An empty wheel of ``name`` that stands for the target's installed ``version``."""
    version = f"{version}.have" if "+" in version else f"{version}+have"
    stem = f"{name.replace('-', '_')}-{version}"
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as wheel:
        info = f"{stem}.dist-info"
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        wheel.writestr(f"{info}/METADATA", metadata)
        tags = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        wheel.writestr(f"{info}/WHEEL", tags)
        wheel.writestr(f"{info}/RECORD", "")
    return folder / f"{stem}-py3-none-any.whl"


def pip(python: str, *args: str) -> None:
    done = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"gpu_wheels: pip {args[0]} failed (output above)")


def resolve(
    python: str, work: Path, requirements: list[str], have: dict, target: list[str]
) -> Path:
    """Every distribution that ``requirements`` resolve to beside the packages ``have`` (as
    their stand-ins), downloaded into a new folder of ``work``: pip learns a wheel's
    dependencies by downloading it, so the resolution's downloads are the ones kept."""
    into = Path(tempfile.mkdtemp(dir=work))
    # the stand-ins are named as files, the only candidates for their names, rather than
    # offered in a folder where the build of a source archive would pick them up too
    stubs = [str(stub_wheel(work / "stubs", n, v)) for n, v in have.items() if v]
    listed = work / f"{into.name}.txt"
    listed.write_text("\n".join(requirements + stubs) + "\n")
    pip(python, "download", "--quiet", "--dest", str(into), "--find-links", str(work / "built"),
        "--requirement", str(listed), *target)  # fmt: skip
    return into


def build_sdists(python: str, folder: Path, built: Path, pure: bool) -> None:
    """Wheels of the dependencies published only as source (antlr4 4.9 for Hydra); for another
    platform only pure Python ones, since a wheel built here must install there."""
    for archive in folder.iterdir():
        if archive.suffix != ".whl":
            pip(python, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(built), str(archive))
    for wheel in built.glob("*.whl"):
        if pure and not wheel.name.endswith("-none-any.whl"):
            raise SystemExit(f"gpu_wheels: {wheel.name} is only published as source and is not "
                             "pure Python: build it on a machine like the target")  # fmt: skip


def target_wheels(python: str | None, work: Path, requirements: list[str], have: dict) -> list:
    """The wheels of the resolution for the target: ``python`` itself, or the GPU image."""
    if python:  # the target runs pip here: one resolution, source archives allowed
        resolved = resolve(python, work, requirements, have, [])
        build_sdists(python, resolved, work / "built", pure=False)
    else:
        # first on this interpreter, where pip may take source archives, to find and build the
        # source-only ones; the image's packages of unknown version stand in at the version
        # installed here (their own dependencies are the image's, not carried either way)
        here = {n: v or installed_version(n) for n, v in have.items()}
        found = resolve(sys.executable, work, requirements, here, ["--prefer-binary"])
        build_sdists(sys.executable, found, work / "built", pure=True)
        # then for the target, wheels only (pip allows nothing else for another platform)
        target = ["--only-binary=:all:", *GPU_TARGET]
        resolved = resolve(sys.executable, work, requirements, have, target)
    built = {wheel_name(path): path for path in (work / "built").glob("*.whl")}
    return [built.get(wheel_name(path), path) for path in resolved.iterdir()]


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def wheel_name(path: Path) -> str:
    """The canonical project name of a wheel or source archive file."""
    return canonical(re.split(r"-\d", path.name, maxsplit=1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="build for this interpreter and what it has installed "
                        "(default: the GPU image, CPython 3.12 on manylinux x86-64)")  # fmt: skip
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()
    have = installed_packages(args.python) if args.python else image_packages(IMAGE_PACKAGES)
    if not have.get("torch"):
        raise SystemExit("gpu_wheels: the target's torch version is unknown (torch==VERSION in "
                         f"{IMAGE_PACKAGES.relative_to(ROOT)})")  # fmt: skip
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dependencies = project["project"]["dependencies"]
    # torch stays in: the resolution then checks that the target's torch satisfies robustlab
    resolved = [d for d in dependencies if requirement_name(d) not in NO_DEPS]
    alone = [d for d in dependencies if requirement_name(d) in NO_DEPS - have.keys()]
    args.dest.mkdir(parents=True, exist_ok=True)
    for old in args.dest.glob("*.whl"):  # two versions of one package stop the install
        old.unlink()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for sub in ("stubs", "built"):
            (work / sub).mkdir()
        for path in target_wheels(args.python, work, resolved, have):
            if not (NEVER.match(wheel_name(path)) or wheel_name(path) in have):
                shutil.copy(path, args.dest)
        runner = args.python or sys.executable
        common = ["--only-binary=:all:", "--quiet", "--dest", str(args.dest)]
        common += [] if args.python else GPU_TARGET
        if alone:
            pip(runner, "download", "--no-deps", *common, *alone)
        # robustlab is installed from its checkout, whose build backend must travel too
        pip(runner, "download", *common, *project["build-system"]["requires"])
    report(args.dest, sorted(n for n in map(requirement_name, dependencies) if n in have))


def report(dest: Path, from_target: list[str]) -> None:
    wheels = sorted(dest.glob("*.whl"), key=lambda path: path.stat().st_size, reverse=True)
    total = sum(path.stat().st_size for path in wheels) / 2**20
    for path in wheels:
        print(f"  {path.stat().st_size / 2**20:6.2f} MiB  {path.name}")
    print(f"gpu_wheels: {len(wheels)} wheels, {total:.1f} MiB in {dest} "
          f"(limit {LIMIT_MIB} MiB); the target's own: {', '.join(from_target)}")  # fmt: skip
    if total > LIMIT_MIB:
        raise SystemExit(f"gpu_wheels: {total:.1f} MiB is over the {LIMIT_MIB} MiB limit")


if __name__ == "__main__":
    main()
