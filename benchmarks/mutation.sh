#!/usr/bin/env bash
# Mutation testing of the pure core with mutmut 3: how many deliberate bugs the fast tests catch.
#
#   benchmarks/mutation.sh            # every target, prints the score per module
#   KEEP=1 benchmarks/mutation.sh     # keep the staging directory (to inspect survivors)
#   MUTATION_VENV=/tmp/mutation-venv benchmarks/mutation.sh   # reuse the tool venv next time
#
# Targets: core/status.py, core/rules.py, core/wire.py, and core/webhook.py's signature check
# (the function ``signature_problem``). Each mutant runs only the fast tests that reach it
# (tests/core/test_{wire,status,rules,properties,field_data,survivors,config,webhook}.py); the
# rest of the suite is not needed to judge these modules and would only make the run slower.
#
# mutmut imports the mutated code from ``mutants/src`` by its file path, but this repository maps
# folders to packages (core -> trackops.core). So the script stages a src-layout copy
# (src/trackops/core/...) with the tests in a temporary directory, and runs mutmut there inside
# a temporary venv that has the project's dependencies and mutmut, but not trackops itself:
# nothing is installed into the developer's venv, and the original code cannot be imported
# by mistake. Not part of .ci/run (it takes minutes); the figures are in docs/testing.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
MUTMUT_SPEC="${MUTMUT_SPEC:-mutmut>=3.8,<4}"
JOBS="${JOBS:-2}"

STAGE="$(mktemp -d "${TMPDIR:-/tmp}/trackops-mutation.XXXXXX")"
cleanup() {
    if [[ -n "${KEEP:-}" ]]; then
        echo "staging kept in $STAGE" >&2
    else
        rm -rf "$STAGE"
    fi
}
trap cleanup EXIT

echo "== staging in $STAGE" >&2
# A venv with the runtime and test dependencies and mutmut, but without trackops: the tests
# must import the mutated copy under mutants/src. MUTATION_VENV=DIR keeps it for the next run.
VENV="${MUTATION_VENV:-$STAGE/venv}"
VPY="$VENV/bin/python"
if [[ ! -x "$VENV/bin/mutmut" ]]; then
    "$PYTHON" -m venv "$VENV"
    "$VPY" - "$ROOT/pyproject.toml" >"$STAGE/requirements.txt" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["test"]:
    print(req)
EOF
    echo "$MUTMUT_SPEC" >>"$STAGE/requirements.txt"
    "$VPY" -m pip install -q --disable-pip-version-check -r "$STAGE/requirements.txt" >&2
fi
if "$VPY" -c "import trackops.core" 2>/dev/null; then
    echo "$VENV has trackops installed: mutmut would test that copy, not the mutants" >&2
    exit 1
fi

WORK="$STAGE/work"
mkdir -p "$WORK/src/trackops" "$WORK/tests/core"
for pkg in core plugins; do cp -r "$ROOT/$pkg" "$WORK/src/trackops/$pkg"; done
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
cp "$ROOT"/tests/{conftest.py,factories.py,plugin_helpers.py} "$WORK/tests/"
cp -r "$ROOT/tests/samples" "$WORK/tests/samples"
TESTS=(test_wire.py test_status.py test_rules.py test_properties.py test_field_data.py
    test_survivors.py test_config.py test_webhook.py)
for t in "${TESTS[@]}"; do
    if [[ -f "$ROOT/tests/core/$t" ]]; then cp "$ROOT/tests/core/$t" "$WORK/tests/core/"; fi
done
# factories.api_reference looks for shared/ beside the repository: mutmut runs the tests from
# $WORK/mutants, so beside it is $WORK/shared.
if [[ -d "$ROOT/../shared" ]]; then ln -s "$(cd "$ROOT/../shared" && pwd)" "$WORK/shared"; fi

cat >"$WORK/pyproject.toml" <<'EOF'
[tool.mutmut]
source_paths = ["src"]
only_mutate = [
    "src/trackops/core/status.py",
    "src/trackops/core/rules.py",
    "src/trackops/core/wire.py",
    "src/trackops/core/webhook.py",
]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-p", "no:randomly"]
pytest_add_cli_args_test_selection = ["tests/core"]
use_git_change_detection = false

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["tests"]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
timeout = 120
EOF

cd "$WORK"
echo "== mutmut run (takes minutes)" >&2
# Only the targets' mutants run: webhook.py's other functions are I/O glue, tested through the
# listener by the full suite.
PATTERNS=("trackops.core.status.*" "trackops.core.rules.*" "trackops.core.wire.*"
    "trackops.core.webhook.x_signature_problem*")
"$VENV/bin/mutmut" run --max-children "$JOBS" "${PATTERNS[@]}" >"$STAGE/mutmut.log" 2>&1 || {
    tail -40 "$STAGE/mutmut.log" >&2
    exit 1
}
"$VENV/bin/mutmut" results --all true >"$STAGE/results.txt" 2>&1 || true

"$VPY" - "$STAGE/results.txt" <<'EOF'
import re, sys

# webhook.py: only the signature check is a target; its other functions are I/O glue tested
# through the listener, not by these fast tests.
TARGETS = {
    "status.py": lambda m: m.startswith("trackops.core.status."),
    "rules.py": lambda m: m.startswith("trackops.core.rules."),
    "wire.py": lambda m: m.startswith("trackops.core.wire."),
    "webhook.py signature check": lambda m: m.startswith(
        (
            "trackops.core.webhook.x_signature_problem",
            "trackops.core.wire.x_push_signature_",
            "trackops.core.wire.x_verify_push_signature_",
        )
    ),
}
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\w.\u01c1]+__mutmut_\d+): (.+)$", line)
    if m:
        rows.append((m.group(1), m.group(2).strip()))
# "no tests" counts against the score like "survived"; "not checked" (outside the targets)
# and "skipped" do not count.
NOT_COUNTED = {"not checked", "skipped"}
print(f"{'target':<28} {'mutants':>8} {'killed':>7} {'not killed':>11} {'score':>7}")
survivors = []
for name, match in TARGETS.items():
    mine = [(m, s) for m, s in rows if match(m) and s not in NOT_COUNTED]
    killed = sum(1 for _, s in mine if s in ("killed", "timeout"))
    total = len(mine)
    score = 100.0 * killed / total if total else 0.0
    print(f"{name:<28} {total:>8} {killed:>7} {total - killed:>11} {score:>6.1f}%")
    survivors += [(m, s) for m, s in mine if s not in ("killed", "timeout")]
if survivors:
    print("\nnot killed (docs/testing.md says why each equivalent one cannot be):")
    for mutant, status in survivors:
        print(f"  {mutant}: {status}")
EOF
