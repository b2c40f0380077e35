#!/usr/bin/env bash
# The light install, checked as a user gets it: build the wheel (`pip wheel --no-deps`), install it in a
# fresh virtualenv from the package registry, check that torch, Lightning, scikit-learn, imbalanced-learn
# and matplotlib are absent, that every command is still listed and a training command names its extra,
# and that `emolens predict` recognises the bundled photo (the README's first command) there; last, that
# the cluster extra installs on top without torch and `emolens batch` recognises the photo too.
# Then print the install size (du of the venv's site-packages) and the import-plus-first-prediction
# time (median of 3 fresh interpreters) of the light venv and of the full environment.
#
#   bash scripts/light_install_check.sh          # full environment: the python running this script (CI: the test env)
#   bash scripts/light_install_check.sh --full   # also build a second venv with emolens[train,serve] to size it
#
# Leaves nothing in the repository; works in $LIGHT_CHECK_DIR (default: a fresh temporary folder, removed).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
FULL=0; [ "${1:-}" = "--full" ] && FULL=1
WORK=${LIGHT_CHECK_DIR:-$(mktemp -d)}
[ -z "${LIGHT_CHECK_DIR:-}" ] && trap 'rm -rf "$WORK"' EXIT
unset PYTHONPATH                       # the venv must see its own emolens, never the repository's src/
export EMOLENS_CACHE_DIR="$WORK/cache" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} EMOLENS_THREADS=${EMOLENS_THREADS:-1}
PHOTO="$REPO/src/emolens/assets/astronaut.jpg"
fail() { echo "light install check: FAIL: $*" >&2; exit 1; }

echo "== wheel"
rm -rf "$WORK/dist"
python3 -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$REPO" 2>/dev/null \
  || python3 -m pip wheel -q --no-deps -w "$WORK/dist" "$REPO"
WHEEL=$(ls "$WORK"/dist/emolens-*.whl)
python3 - "$WHEEL" <<'PY' || fail "the wheel lacks the bundled ONNX models"
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {f"emolens/weights/{m}.{x}" for m in ("ferplus", "fer2013") for x in ("onnx", "json")}
missing = need - names
print(f"{sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files" + (f", MISSING {sorted(missing)}" if missing else ""))
sys.exit(1 if missing else 0)
PY

echo "== light venv"
python3 -m venv "$WORK/light"
LP="$WORK/light/bin/python"
start=$(date +%s)
"$LP" -m pip install -q "$WHEEL"     # as a user gets it: no constraints file
echo "installed in $(( $(date +%s) - start )) s"
cd "$WORK"                             # away from the repository
for m in torch lightning sklearn imblearn matplotlib; do
  if "$LP" -c "import $m" 2>/dev/null; then fail "$m is importable in the light install"; fi
done
echo "absent as required: torch lightning sklearn imblearn matplotlib"
"$LP" -m pip check
"$WORK/light/bin/emolens" --help > "$WORK/help.txt"
for c in predict video webcam batch train evaluate calibrate export serve experiment ensemble data; do
  grep -qE "^    $c( |$)" "$WORK/help.txt" || fail "emolens --help does not list $c"
done
set +e; "$WORK/light/bin/emolens" train --config x.yaml 2> "$WORK/train.err"; rc=$?; set -e
[ "$rc" = 2 ] && grep -q "pip install 'emolens\[train\]'" "$WORK/train.err" || fail "emolens train: rc $rc, $(cat "$WORK/train.err")"
echo "emolens train without the extra: $(cat "$WORK/train.err")"
"$WORK/light/bin/emolens" models > "$WORK/models.txt" || fail "emolens models failed in the light install"
grep -q "ferplus .*(default)" "$WORK/models.txt" && grep -q "need torch" "$WORK/models.txt" \
  || fail "emolens models: $(cat "$WORK/models.txt")"
echo "emolens models lists the bundled models without torch"
"$WORK/light/bin/emolens" predict "$PHOTO" | tee "$WORK/predict.txt"
grep -q "face 1 .* happy" "$WORK/predict.txt" || fail "emolens predict did not find the happy face"
"$WORK/light/bin/emolens" predict "$PHOTO" --precision int8 > "$WORK/predict-int8.txt" 2>&1 \
  && grep -q "face 1 .* happy" "$WORK/predict-int8.txt" || fail "emolens predict --precision int8: $(cat "$WORK/predict-int8.txt")"
"$LP" -c "from emolens import Recognizer; p = Recognizer().info()['precision']; assert p == 'int8', p" \
  || fail "the light install's default Recognizer does not run the INT8 network"
echo "the light install runs the INT8 networks (the default) without torch or onnx"

site_size() { du -sm "$("$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" | cut -f1; }
first_prediction() {   # seconds from interpreter start to the first prediction, median of 3 fresh runs
  for _ in 1 2 3; do
    "$1" - "$PHOTO" <<'PY'
import sys, time
t0 = time.perf_counter()
from emolens import Recognizer
frame = Recognizer().predict(sys.argv[1])
assert frame.faces and frame.faces[0].label == "happy", frame
print(f"{time.perf_counter() - t0:.2f}")
PY
  done | sort -n | sed -n 2p
}

FULLPY=python3
if [ "$FULL" = 1 ]; then
  echo "== full venv (emolens[train,serve])"
  python3 -m venv "$WORK/full"
  start=$(date +%s)
  "$WORK/full/bin/python" -m pip install -q "$WHEEL[train,serve]" -c "$REPO/constraints.txt"
  echo "installed in $(( $(date +%s) - start )) s"
  FULLPY="$WORK/full/bin/python"
fi
echo "== measured (OMP_NUM_THREADS=$OMP_NUM_THREADS EMOLENS_THREADS=$EMOLENS_THREADS)"
echo "light: site-packages $(site_size "$LP") MB, import + first prediction $(first_prediction "$LP") s"
if [ "$FULL" = 1 ]; then
  echo "full:  site-packages $(site_size "$FULLPY") MB, import + first prediction $(first_prediction "$FULLPY") s"
else
  echo "full (this environment, $(command -v python3)): import + first prediction $(first_prediction "$FULLPY") s"
fi
echo "== the cluster extra on top of the light install (emolens batch: Dask, pyarrow; still no torch)"
"$LP" -m pip install -q "$WHEEL[cluster]"
for m in torch lightning sklearn imblearn matplotlib; do
  if "$LP" -c "import $m" 2>/dev/null; then fail "$m is importable after installing emolens[cluster]"; fi
done
"$LP" -m pip check
"$WORK/light/bin/emolens" batch "$PHOTO" --out "$WORK/batch" --workers 1 --no-progress | tee "$WORK/batch.txt"
"$LP" - "$WORK/batch" <<'PY' || fail "emolens batch did not write the happy face's row"
import sys
import pandas as pd
df = pd.read_parquet(sys.argv[1])
assert list(df.label) == ["happy"] and df.error.isna().all(), df
print(f"emolens batch wrote {len(df)} row: {df.label[0]} {df.confidence[0]:.2f}")
PY
echo "light install check: OK"
