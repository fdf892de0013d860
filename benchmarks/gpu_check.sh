#!/usr/bin/env bash
# The GPU check: one script, one GPU, under 8 minutes, one JSON report. From a bare machine it makes a virtualenv and
# installs torch (the package index's default build: CUDA on Linux x86-64) and this package with its test extra, then
#   tests      tests/test_mixed_precision.py on the device: the hash bit-exact on CPU and CUDA, cached path vs
#              reference, token embeddings under fp16/bf16 autocast, --bf16/--fp16/--torch_compile pretraining
#   bench      inference latency EELBERT / BERT twin (UNO and tiny) at 1x32, 32x128 and 256x128; MLM training
#              tokens/s of UNO and tiny against BertForMaskedLM at 256x128, fp32 and bf16
#   reproduce  UNO, EELBERT-tiny and BERT-tiny pretrained side by side on the one GPU for the time that is left,
#              then fine-tuned on Rotten Tomatoes (benchmarks/reproduce.py --budget gpu --pretrain-seconds ...)
# Every part runs under `timeout` within one deadline; OUT/gpu_check.json (and a digest, OUT/gpu_check.md) is written
# whatever happens, with each part's status, seconds and log tail, and every skip with its reason.
#
#   benchmarks/gpu_check.sh                               # a GPU machine: --device auto --budget full
#   benchmarks/gpu_check.sh --device cpu --budget tiny    # the same parts on CPU at tiny sizes (CUDA-only cases skip)
#
# Options, or the environment variables in brackets:
#   --device auto|cuda|cpu  [EELBERT_CHECK_DEVICE]   auto: CUDA when torch sees a GPU; cpu also hides any GPU
#   --budget full|tiny      [EELBERT_CHECK_BUDGET]   full: the sizes above; tiny: a few steps of everything
#   --seconds N             [EELBERT_CHECK_SECONDS]  the whole run's deadline (default: 460 full, 1800 tiny)
#   --out DIR               [EELBERT_CHECK_OUT]      the report's folder (default out/gpu_check)
#   --python PY             [EELBERT_CHECK_PYTHON]   use this interpreter instead of a new virtualenv
#   --data DIR              [EELBERT_CHECK_DATA]     sentiment/rotten_tomatoes and corpus/ (default: shared/data,
#                                                    ../shared/data, else the samples bundled with the package)
#   [EELBERT_TORCH_SPEC]    what `pip install` asks for when torch is missing (default: torch)
#   [EELBERT_CHECK_WORK]    checkpoints and the virtualenv, kept out of the report (default out/gpu_check_work)
set -uo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$SELF")/.."

DEVICE=${EELBERT_CHECK_DEVICE:-auto}
BUDGET=${EELBERT_CHECK_BUDGET:-full}
SECONDS_TOTAL=${EELBERT_CHECK_SECONDS:-}
OUT=${EELBERT_CHECK_OUT:-out/gpu_check}
WORK=${EELBERT_CHECK_WORK:-out/gpu_check_work}
CHECK_PYTHON=${EELBERT_CHECK_PYTHON:-}
DATA=${EELBERT_CHECK_DATA:-}
COMMAND="benchmarks/gpu_check.sh $*"
while (($#)); do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --seconds) SECONDS_TOTAL=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --python) CHECK_PYTHON=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        __setup) MODE=setup; shift ;;
        *) echo "gpu_check.sh: unknown option $1 (see the comment at the top of the script)" >&2; exit 2 ;;
    esac
done
case $DEVICE in
    auto | cuda | cpu) ;;
    *) echo "gpu_check.sh: --device auto, cuda or cpu, not $DEVICE" >&2; exit 2 ;;
esac
case $BUDGET in full | tiny) ;; *) echo "gpu_check.sh: --budget full or tiny, not $BUDGET" >&2; exit 2 ;; esac
[ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES=""  # cpu: the parts must not find a GPU either

# ----------------------------------------------------------------------------------------------- setup (a child)
# Run as `gpu_check.sh __setup` under `timeout` by the main script, with its settings in the environment.
if [ "${MODE:-}" = setup ]; then
    set -e
    if [ -n "$CHECK_PYTHON" ]; then
        PY=$CHECK_PYTHON
    else
        if [ ! -x "$WORK/venv/bin/python" ] && ! python3 -m venv "$WORK/venv"; then
            rm -rf "$WORK/venv" # no venv module (Debian without python3-venv): virtualenv from the package index
            python3 -m pip install -q --user virtualenv && python3 -m virtualenv -q "$WORK/venv"
        fi
        PY=$WORK/venv/bin/python
    fi
    echo "$PY" >"$OUT/parts/python.txt"
    if ! "$PY" -c "import torch" 2>/dev/null; then
        echo "installing ${EELBERT_TORCH_SPEC:-torch}"
        "$PY" -m pip install -q "${EELBERT_TORCH_SPEC:-torch}"
    fi
    if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null 2>&1 &&
        ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
        # a CPU build came from local pip settings (find-links, a CPU index): the package index's default build
        echo "torch $("$PY" -c 'import torch; print(torch.__version__)') sees no GPU though nvidia-smi does:" \
            "reinstalling torch from https://pypi.org/simple without local pip configuration"
        PIP_CONFIG_FILE=/dev/null "$PY" -m pip install -q --force-reinstall --index-url https://pypi.org/simple torch
    fi
    "$PY" -m pip install -q -e ".[test]"
    "$PY" benchmarks/gpu_check.py env --device "$DEVICE" >"$OUT/parts/env.json"
    cat "$OUT/parts/env.json"
    exit 0
fi

# ------------------------------------------------------------------------------------------------------ the run
[ -n "$SECONDS_TOTAL" ] || SECONDS_TOTAL=$([ "$BUDGET" = full ] && echo 460 || echo 1800)
START=$(date +%s)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
PARTS="setup tests bench reproduce"
mkdir -p "$OUT/parts" "$OUT/logs" "$WORK"
rm -f "$OUT"/parts/* "$OUT"/logs/* "$OUT/gpu_check.json" "$OUT/gpu_check.md"
RESOLVED=unknown
DEVICE_NOTE=""
# the setup child reads its settings from the environment
export EELBERT_CHECK_DEVICE=$DEVICE EELBERT_CHECK_OUT=$OUT EELBERT_CHECK_WORK=$WORK EELBERT_CHECK_PYTHON=$CHECK_PYTHON

left() { echo $((START + SECONDS_TOTAL - $(date +%s))); }
smaller() { if (($1 < $2)); then echo "$1"; else echo "$2"; fi; }
json_string() { # a JSON string literal of $1
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/ }
    printf '"%s"' "$s"
}

write_run() {
    local parts="" name
    for name in $PARTS; do parts="$parts${parts:+, }\"$name\""; done
    cat >"$OUT/parts/run.json" <<EOF
{"command": $(json_string "$COMMAND"), "device_requested": "$DEVICE", "device": "$RESOLVED", "budget": "$BUDGET",
 "deadline_s": $SECONDS_TOTAL, "started": "$STARTED", "wall_s": $(($(date +%s) - START)),
 "device_note": $(json_string "$DEVICE_NOTE"), "reproduce_dir": $(json_string "$WORK/reproduce"),
 "parts": [$parts]}
EOF
}

status() { # status NAME STATUS SECONDS RC REASON
    printf '{"status": "%s", "seconds": %s, "rc": %s, "reason": %s}\n' "$2" "$3" "$4" "$(json_string "$5")" \
        >"$OUT/parts/$1.status.json"
}

part() { # part NAME LIMIT COMMAND...: COMMAND under `timeout LIMIT`, its output in OUT/logs/NAME.log
    local name=$1 limit=$2 began rc state reason
    shift 2
    if ((limit < 10)); then
        echo "== $name: skipped, the deadline leaves ${limit} s"
        status "$name" skipped 0 null "not run: within the deadline (--seconds $SECONDS_TOTAL), after the time kept \
for the later parts, ${limit} s were left for it"
        return 1
    fi
    echo "== $name (at most ${limit} s; $(left) s left of the run)"
    began=$(date +%s)
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$OUT/logs/$name.log"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) state=ok reason="" ;;
        124 | 137) state=timeout reason="stopped by timeout after ${limit} s" ;;
        *) state=failed reason="exit status $rc" ;;
    esac
    status "$name" "$state" $(($(date +%s) - began)) "$rc" "$reason"
    return "$rc"
}

finish() { # the report, whatever happened before
    write_run
    local python
    for python in python3 "${PY:-}"; do
        [ -n "$python" ] && "$python" benchmarks/gpu_check.py report "$OUT" && return
    done
    echo "gpu_check.sh: no Python could write the report; the raw parts are in $OUT/parts" >&2
    printf '{"ok": false, "error": "no Python could assemble the report", "run": %s}\n' \
        "$(cat "$OUT/parts/run.json")" >"$OUT/gpu_check.json"
}
trap finish EXIT
write_run

# -- setup
part setup "$(smaller "$(left)" 300)" bash "$SELF" __setup
PY=$(cat "$OUT/parts/python.txt" 2>/dev/null || echo python3)
CUDA_SEEN=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
case $DEVICE in
    cpu) RESOLVED=cpu ;;
    auto) RESOLVED=$([ "$CUDA_SEEN" = 1 ] && echo cuda || echo cpu) ;;
    cuda)
        RESOLVED=cuda
        if [ "$CUDA_SEEN" != 1 ]; then
            RESOLVED=cpu
            DEVICE_NOTE="--device cuda, but torch.cuda.is_available() is False here: every part ran on CPU"
        fi
        ;;
esac
echo "device: $RESOLVED ${DEVICE_NOTE:+($DEVICE_NOTE)}"
write_run

# -- data: the shared sets when present, else the bundled samples
if [ -z "$DATA" ]; then
    for candidate in shared/data ../shared/data; do
        if [ -f "$candidate/corpus/brown.txt" ] && [ -d "$candidate/sentiment/rotten_tomatoes" ]; then
            DATA=$candidate
            break
        fi
    done
fi
if [ -n "$DATA" ]; then
    CORPUS=("$DATA/corpus/brown.txt")
    [ "$BUDGET" = full ] && [ -f "$DATA/corpus/nlp-corpus.txt" ] && CORPUS+=("$DATA/corpus/nlp-corpus.txt")
    SENTIMENT=$DATA/sentiment/rotten_tomatoes
else
    SAMPLES=src/eelbert_hf/data
    CORPUS=("$SAMPLES/brown_sample.txt")
    SENTIMENT=$WORK/rt_sample
    mkdir -p "$SENTIMENT"
    cp "$SAMPLES/rt_sample_train.jsonl" "$SENTIMENT/train.jsonl"
    cp "$SAMPLES/rt_sample_validation.jsonl" "$SENTIMENT/validation.jsonl"
fi
echo "data: corpus ${CORPUS[*]}; sentiment $SENTIMENT"

# -- tests on the device (CPU cases run too; CUDA cases skip on CPU with their reason)
part tests "$(smaller "$(($(left) - 200))" 130)" "$PY" -m pytest -q -p no:cacheprovider -rs \
    tests/test_mixed_precision.py --junitxml="$OUT/parts/tests.xml"

# -- latency and MLM throughput
LIMIT=$(smaller "$(($(left) - 160))" 70)
part bench "$LIMIT" "$PY" benchmarks/gpu_check.py bench --device "$RESOLVED" --budget "$BUDGET" \
    --seconds $((LIMIT - 20)) ${DATA:+--data "$DATA"} --out "$OUT/parts/bench.json"

# -- the three models side by side on the device, then Rotten Tomatoes
rm -rf "$WORK/reproduce"
if [ "$BUDGET" = full ]; then
    PRETRAIN_S=$(($(left) - 130)) # fine-tuning, loading and the report take the rest
    SIZES=()
else
    PRETRAIN_S=15
    SIZES=(--set batch=8 --set seq=32 --set corpus_cap=2000 --set train_cap=256 --set epochs=1
        --set finetune_batch=16 --set warmup=2 --set log_every=5 --set workers=0)
fi
if ((PRETRAIN_S < 20)) && [ "$BUDGET" = full ]; then
    status reproduce skipped 0 null "not run: the deadline left $(left) s, too little to pretrain"
else
    part reproduce $(($(left) - 10)) "$PY" benchmarks/reproduce.py --budget gpu --pretrain-seconds "$PRETRAIN_S" \
        --jobs 3 --variants uno-eelbert eelbert-tiny bert-tiny --output_dir "$WORK/reproduce" \
        --corpus "${CORPUS[@]}" --sentiment "$SENTIMENT" "${SIZES[@]}"
fi
echo "== report: $OUT/gpu_check.json ($(($(date +%s) - START)) s in all)"
