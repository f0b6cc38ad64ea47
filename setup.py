"""Packaging step that pyproject.toml cannot declare: the course files tito's self-check needs.

An exercise notebook on Colab checks the learner's code with the chapter's
checkpoint (tito/selfcheck.py), but there the package is installed from the
repository and no checkout exists. So every build of the package copies
curriculum.toml and checkpoints/*.py into tito/_course/, where
`tito.selfcheck.course_root()` finds them. An editable install reads them from
the checkout instead. Everything else is configured in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
COURSE_FILES = ["curriculum.toml", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "checkpoints").glob("*.py"))]


class BuildWithCourseFiles(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return  # an editable install reads the checkout's own files
        target = Path(self.build_lib) / "tito" / "_course"
        for name in COURSE_FILES:
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(ROOT / name), str(destination))


setup(cmdclass={"build_py": BuildWithCourseFiles})
