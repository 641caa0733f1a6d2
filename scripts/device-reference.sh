#!/usr/bin/env bash
# One command on a lent GPU (at most 10 minutes): check the image, run `nrg reference` within a budget
# that leaves time to archive, and write one archive under $OUT. Run it from the repository root:
#
#     bash scripts/device-reference.sh
#
# Nothing is installed (the image has Python, torch, transformers, pynvml; nrg runs from src/ with
# PYTHONPATH) and no GPU setting is ever changed: nvidia-smi is only queried, and `nrg reference`
# observes clocks and power without setting them. Rerun on the same warm machine to resume: the run
# folder ($NRG_REF_RUN, default runs/reference) keeps finished cells, the cells the budget stopped
# (run first next time) and the estimator's corrections.
#
# Environment (all optional):
#   OUT                  where the archive goes (the device tool sets it; default: ./out)
#   NRG_DEVICE_LIMIT_S   the command's limit in seconds (default 600)
#   NRG_REF_RESERVE_S    seconds kept after the run for the archive and Python's exit (default 45)
#   NRG_REF_DEVICE       cuda (default), cuda:N, or cpu (a dry run without a GPU)
#   NRG_REF_RUN          the run folder (default runs/reference)
#   NRG_REF_ARGS         more arguments for nrg reference (e.g. --retry-failed, --one-per-part)
#   PYTHON               the interpreter (default python3)
set -u
START_S=$SECONDS
LIMIT_S=${NRG_DEVICE_LIMIT_S:-600}
RESERVE_S=${NRG_REF_RESERVE_S:-45}
DEVICE=${NRG_REF_DEVICE:-cuda}
RUN_DIR=${NRG_REF_RUN:-runs/reference}
PY=${PYTHON:-python3}
OUT=${OUT:-out}
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$OUT" "$RUN_DIR" || exit 2
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"

echo "== image"
if command -v nvidia-smi >/dev/null 2>&1; then
    # queries only: name, driver, memory, clocks and power limit as they are
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit \
        --format=csv,noheader || echo "nvidia-smi: query failed (carrying on)"
else
    echo "nvidia-smi: not found"
fi
"$PY" - <<'PY' || { echo "the image lacks what nrg needs (above); nothing was run"; exit 2; }
import platform, sys
import torch, transformers
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, "
      f"available: {torch.cuda.is_available()}), transformers {transformers.__version__}")
for name in ("pynvml", "pandas", "pyarrow", "codecarbon", "bitsandbytes"):
    try:
        __import__(name)
        print(f"  {name}: yes")
    except ImportError:
        print(f"  {name}: no" + (" (nrg carries the constants it would read)" if name == "codecarbon" else
                                  " (its cells are listed as not run)" if name == "bitsandbytes" else ""))
import nrg
print(f"nrg {nrg.__version__} from {nrg.__file__}")
PY

# The budget starts once Python and torch are up (~10-20 s), so count them in the reserve.
BUDGET_S=$(( LIMIT_S - (SECONDS - START_S) - RESERVE_S - 20 ))
if [ "$BUDGET_S" -lt 30 ]; then
    echo "only ${BUDGET_S} s would be left for measuring: raise NRG_DEVICE_LIMIT_S or lower NRG_REF_RESERVE_S"
    exit 2
fi
ARCHIVE="$OUT/nrg-reference-$(date -u +%Y%m%dT%H%M%SZ).tar.gz"
echo "== nrg reference: device $DEVICE, budget ${BUDGET_S} s, run folder $RUN_DIR, archive $ARCHIVE"
# shellcheck disable=SC2086  # NRG_REF_ARGS is a list of arguments
"$PY" -m nrg reference --device "$DEVICE" --budget-s "$BUDGET_S" --out "$RUN_DIR" --no-progress \
    --archive "$ARCHIVE" ${NRG_REF_ARGS:-}
rc=$?
if [ "$rc" -ne 0 ] && [ ! -f "$ARCHIVE" ] && [ -n "$(ls -A "$RUN_DIR")" ]; then
    echo "== nrg reference exited $rc: archiving what is there"
    "$PY" -c "import sys; from nrg.reference import archive; print(archive(sys.argv[1], sys.argv[2]))" \
        "$RUN_DIR" "$ARCHIVE"
fi
echo "== done in $(( SECONDS - START_S )) s (limit ${LIMIT_S} s), exit $rc"
exit "$rc"
