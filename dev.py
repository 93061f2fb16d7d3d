#!/usr/bin/env python3
"""Run or test villagecheck from a fresh checkout: `python3 dev.py run` / `python3 dev.py test`.

Creates its own virtualenv in .venv, installs the project into it, then runs the server (with
the demo county when the database is empty) or the whole test suite. Needs only python3.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"


def sh(*args, **kwargs):
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def ensure_venv() -> None:
    """Make .venv; on Debian without python3-venv, install it when we are root."""
    if (BIN / "python").exists():
        return
    try:
        sh(sys.executable, "-m", "venv", VENV)
    except subprocess.CalledProcessError:
        shutil.rmtree(VENV, ignore_errors=True)
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit(
                "python3 -m venv failed: install python3-venv (sudo apt-get install "
                "python3-venv) and run this again"
            )
        sh("apt-get", "update", "-q")
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        subprocess.run(["apt-get", "install", "-y", "-q", f"python{ver}-venv"], check=False)
        sh("apt-get", "install", "-y", "-q", "python3-venv")
        sh(sys.executable, "-m", "venv", VENV)
    sh(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")


def install(extra: str = "") -> None:
    sh(BIN / "python", "-m", "pip", "install", "-q", "-e", f"{ROOT}{extra}")


def run() -> None:
    ensure_venv()
    install()
    os.execv(BIN / "villagecheck", [str(BIN / "villagecheck"), "serve", "--demo", *sys.argv[2:]])


def test() -> None:
    ensure_venv()
    install("[test]")
    args = sys.argv[2:] or ["-q"]
    result = subprocess.run([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT)
    sys.exit(result.returncode)


if __name__ == "__main__":
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit("usage: python3 dev.py run | test [pytest arguments]")
    commands[sys.argv[1]]()
