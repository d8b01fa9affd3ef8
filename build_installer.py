"""`python build_installer.py [--smoke]`: a self-contained Ghostpen for the OS this runs on.

Windows: a windowed ghostpen.exe folder (no console) plus an Inno Setup script; macOS: a .app;
Linux: a folder and a .tar.gz. Resources, the tokenizer, onnxruntime's provider libraries and
the Qt plugins go in; torch, transformers and the tests stay out. Prints the bundle's size.
--smoke runs the built app headless: `ghostpen generate` on a tiny model, and the window
offscreen for a second; both must exit 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BUILD = ROOT / "build"
DIST = BUILD / "dist"
NAME = "ghostpen"
# Heavy packages the app never imports at run time (dev/test tools, other GUI toolkits).
EXCLUDED = ["torch", "transformers", "tests", "pytest", "hypothesis", "tkinter", "matplotlib",
            "IPython", "pandas", "scipy", "sympy", "PyQt5", "PyQt6", "PySide2",
            "onnxruntime.transformers", "onnxruntime.quantization", "onnxruntime.tools",
            # hub_download downloads over plain HTTP(S); the Xet transfer backend is not used.
            # (checked by running the download tests with these modules blocked).
            "hf_xet", "pydantic", "pydantic_core",
            "PySide6.QtNetwork", "PySide6.QtQml", "PySide6.QtQuick"]
# Bundled pieces the app does not use: Qt's own UI translations (the app is English).
PRUNED = ["PySide6/Qt/translations"]

INNO_TEMPLATE = """; Inno Setup script for Ghostpen, written by build_installer.py
[Setup]
AppName=Ghostpen
AppVersion={version}
DefaultDirName={{autopf}}\\Ghostpen
DefaultGroupName=Ghostpen
OutputBaseFilename=ghostpen-{version}-setup
Compression=lzma2
SolidCompression=yes
PrivilegesRequired=lowest

[Files]
Source: "{dist}\\*"; DestDir: "{{app}}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{{group}}\\Ghostpen"; Filename: "{{app}}\\ghostpen.exe"
Name: "{{autodesktop}}\\Ghostpen"; Filename: "{{app}}\\ghostpen.exe"; Tasks: desktopicon

[Tasks]
Name: desktopicon; Description: "Create a desktop icon"; Flags: unchecked
"""


def pyinstaller_args() -> list[str]:
    separator = ";" if os.name == "nt" else ":"
    args = [
        str(ROOT / "app" / "__main__.py"),
        "--name", NAME, "--noconfirm", "--clean", "--log-level", "WARN",
        "--distpath", str(DIST), "--workpath", str(BUILD / "work"), "--specpath", str(BUILD),
        "--add-data", f"{ROOT / 'resources'}{separator}resources",
        "--collect-binaries", "onnxruntime",  # the provider libraries (CUDA, DirectML, CPU)
        "--paths", str(ROOT),
    ]
    if sys.platform in ("win32", "darwin"):
        args.append("--windowed")  # no console window; the frozen app copes with no stdout
    for module in EXCLUDED:
        args += ["--exclude-module", module]
    return args


def bundle_path() -> Path:
    return DIST / f"{NAME}.app" if sys.platform == "darwin" else DIST / NAME


def executable() -> Path:
    if sys.platform == "darwin":
        return bundle_path() / "Contents" / "MacOS" / NAME
    return bundle_path() / (f"{NAME}.exe" if os.name == "nt" else NAME)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def strip_symbols(bundle: Path) -> None:
    """Drop symbol tables from the shared libraries, leaving auditwheel's vendored `*.libs`
    folders alone: their patched headers break under strip ("ELF load command address/offset
    not page-aligned"), and so does PyInstaller's own --strip for that reason."""
    for library in bundle.rglob("*.so*"):
        if library.is_file() and not library.is_symlink() and not any(
                part.endswith(".libs") for part in library.parts):
            subprocess.run(["strip", "--strip-unneeded", str(library)], check=False,
                           capture_output=True)


def build() -> Path:
    import PyInstaller.__main__

    from app import __version__

    started = time.perf_counter()
    PyInstaller.__main__.run(pyinstaller_args())
    bundle = bundle_path()
    for relative in PRUNED:
        for found in bundle.rglob(Path(relative).name):
            if found.as_posix().endswith(relative):
                shutil.rmtree(found)
    if sys.platform.startswith("linux") and shutil.which("strip"):
        strip_symbols(bundle)
    print(f"built {bundle} in {time.perf_counter() - started:.0f} s")
    if sys.platform.startswith("linux"):
        archive = DIST / f"{NAME}-{__version__}-linux-{platform.machine()}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(bundle, arcname=NAME)
        print(f"archive {archive} ({archive.stat().st_size / 1e6:.0f} MB)")
    elif os.name == "nt":
        script = BUILD / "ghostpen.iss"
        script.write_text(INNO_TEMPLATE.format(version=__version__, dist=bundle), "utf-8")
        print(f"Inno Setup script {script} (compile with iscc)")
    print(f"bundle size: {folder_size(bundle) / 1e6:.0f} MB unpacked (models not included)")
    return bundle


def smoke() -> None:
    """Run the frozen app: a headless generation, then the window offscreen for a second."""
    from models.export import export_model
    from models.random import write_random_checkpoint

    exe = executable()
    if not exe.exists():
        raise SystemExit(f"{exe} is missing: build first (python build_installer.py)")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, model = Path(tmp) / "ck", Path(tmp) / "tiny"
        write_random_checkpoint("tiny", checkpoint, seed=0)
        export_model(checkpoint, model, "int8", progress=lambda _: None)
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
               "GHOSTPEN_CONFIG_DIR": str(Path(tmp) / "config"),
               "GHOSTPEN_DATA_DIR": str(Path(tmp) / "data")}
        generate = subprocess.run(
            [str(exe), "generate", "--model", str(model), "--prompt", "Hello",
             "--max-new-tokens", "8", "--greedy", "--json"],
            capture_output=True, text=True, timeout=120, env=env)
        print(f"smoke generate: exit {generate.returncode}, "
              f"{len(generate.stdout.splitlines())} lines")
        if generate.returncode != 0:
            raise SystemExit(f"frozen `ghostpen generate` failed:\n{generate.stderr[-2000:]}")
        started = time.perf_counter()
        window = subprocess.run([str(exe), "--smoke-test"], capture_output=True, text=True,
                                timeout=120, env=env)
        print(f"smoke window: exit {window.returncode} after "
              f"{time.perf_counter() - started:.1f} s; {window.stdout.strip()}")
        if window.returncode != 0:
            raise SystemExit(f"frozen window failed:\n{window.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="build, then run the smoke test")
    parser.add_argument("--smoke-only", action="store_true", help="smoke-test an existing build")
    args = parser.parse_args(argv)
    if not args.smoke_only:
        if bundle_path().exists():
            shutil.rmtree(bundle_path())
        build()
    if args.smoke or args.smoke_only:
        smoke()
    return 0


if __name__ == "__main__":
    sys.exit(main())
