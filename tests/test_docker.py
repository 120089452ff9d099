"""The Docker files parse, name real CLI commands and agree on ports, paths and torch sources.

They also run for real, with podman, in `cmar check containers` (CI runs it); these checks are
the fast half.
"""

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _compose(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _dockerfile_cmds() -> dict[str, list[str]]:
    """The CMD of each stage of the Dockerfile."""
    stages: dict[str, list[str]] = {}
    stage = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if m := re.match(r"FROM \S+ AS (\w+)", line):
            stage = m.group(1)
        elif line.startswith("CMD "):
            stages[stage] = yaml.safe_load(line[4:])
    return stages


def _parses(command: list[str]) -> None:
    assert command[0] == "cmar"
    build_parser().parse_args(command[1:])  # raises SystemExit on an unknown command or option


def test_every_command_is_a_real_cli_command() -> None:
    commands = [service["command"] for service in _compose()["services"].values()]
    commands += [service["command"] for service in _compose("docker-compose.catalog.yml")["services"].values()]
    commands += list(_dockerfile_cmds().values())
    assert len(commands) == 5
    for command in commands:
        _parses(command)


def test_compose_images_match_the_dockerfile_stages_and_their_commands() -> None:
    services = _compose()["services"]
    cmds = _dockerfile_cmds()
    assert services["api"]["build"]["target"] == "api" and services["api"]["command"] == cmds["api"]
    assert services["build"]["build"]["target"] == "builder" and services["build"]["command"] == cmds["builder"]
    assert services["api"]["depends_on"]["build"]["condition"] == "service_completed_successfully"


def test_ports_agree() -> None:
    api = _compose()["services"]["api"]
    command = api["command"]
    port = command[command.index("--port") + 1]
    container_port = api["ports"][0].rsplit(":", 1)[1]
    assert container_port == port
    assert f"EXPOSE {port}" in (ROOT / "Dockerfile").read_text()
    health = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in health
    assert f"127.0.0.1:{port}/healthz" in (ROOT / "Dockerfile").read_text()


def test_artifacts_volume_is_shared_and_paths_agree() -> None:
    services = _compose()["services"]
    build_args, serve_args = services["build"]["command"], services["api"]["command"]
    workdir = build_args[build_args.index("--workdir") + 1]
    assert serve_args[serve_args.index("--model") + 1] == f"{workdir}/model"
    assert serve_args[serve_args.index("--index") + 1] == f"{workdir}/index"
    assert f"artifacts:{workdir}" in services["build"]["volumes"]
    assert f"artifacts:{workdir}:ro" in services["api"]["volumes"]


def test_pip_installs_match_the_readme_and_the_api_image_has_no_torch() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"(pip install [^\\\n]*)", dockerfile)
    assert installs == [
        "pip install -c constraints.txt -e '.[serve]'",
        "pip install ${TORCH_PIP_ARGS} \"torch==$(sed -n 's/^torch==//p' constraints.txt)\" ",
        "pip install -c constraints.txt -e '.[train]'",
    ]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def closure(extra: str) -> set[str]:
        out: set[str] = set()
        for dep in extras[extra]:
            if m := re.match(r"cmar\[([\w,]+)\]", dep):
                for sub in m.group(1).split(","):
                    out |= closure(sub)
            else:
                out.add(re.split(r"[<>=\[ ]", dep)[0])
        return out

    assert "torch" not in closure("serve") and "torch" in closure("train")
    readme = (ROOT / "README.md").read_text()
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        if "pytest" in line:
            assert line in readme  # CI runs exactly the README's test command


def test_serving_code_never_imports_torch() -> None:
    code = "import sys, cli.main, service.app, index_build.build, inference.index; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
    assert shlex.split("cmar serve")  # the API image's entry point is the console script from pyproject
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["cmar"] == "cli.main:main"


def test_the_api_gets_a_writable_database_volume_and_the_key_from_the_environment() -> None:
    compose = _compose()
    api = compose["services"]["api"]
    database = Path(api["environment"]["CMAR_WRITES_DB"])
    mounts = {m.split(":")[1]: m for m in api["volumes"]}
    assert str(database.parent) in mounts and not mounts[str(database.parent)].endswith(":ro")
    assert mounts[str(database.parent)].split(":")[0] in compose["volumes"]
    assert api["environment"]["CMAR_API_KEY"].startswith("${CMAR_API_KEY")


def test_the_images_copy_every_package_the_wheel_ships() -> None:
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), flags=re.M))
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {name.rstrip("*") for name in include}
    assert packages <= copied, f"the Dockerfile does not copy {sorted(packages - copied)}"


def test_the_builder_takes_cpu_torch_by_default_and_wheels_by_argument() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    assert f'ARG TORCH_PIP_ARGS="{cpu_index}"' in dockerfile
    build = _compose()["services"]["build"]["build"]
    assert build["args"]["TORCH_PIP_ARGS"] == "${TORCH_PIP_ARGS:-" + cpu_index + "}"
    api_stage = dockerfile.split("FROM base AS api")[1].split("FROM base AS builder")[0]
    assert "wheels" not in api_stage  # the API image never sees the wheel folder
    assert "--mount=type=bind,source=wheels,target=/app/wheels" in dockerfile  # never a layer of the builder
    assert (ROOT / "wheels" / "README.md").is_file()  # the folder exists in a fresh clone (the mount needs it)
    for service in _compose()["services"].values():
        assert service["image"].startswith("${CMAR_IMAGE_PREFIX:-cmar}-")
