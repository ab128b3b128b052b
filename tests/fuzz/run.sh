#!/usr/bin/env bash
# tests/fuzz/run.sh — runs every libFuzzer target for real (not part of the
# default suite, which only replays the seed corpora).
#
# Usage: tests/fuzz/run.sh [--time=SECONDS] [--jobs=N] [--no-commit] [TARGET...]
#   --time=S      seconds per target (default 600: ten minutes each)
#   --no-commit   do not copy new corpus entries into tests/fuzz/corpus/
#   TARGET        names from tests/fuzz/BUILD.bazel (default: all of them)
#
# Each target is built with --config=fuzz (clang, libFuzzer, ASan+UBSan) and
# run in turn (one core: the machine is shared), starting from its seed
# corpus, with -max_total_time=S. Afterwards the corpus it grew is merged
# (-merge=1) against the seeds and at most CORPUS_KEEP new inputs (the
# smallest) are copied into tests/fuzz/corpus/NAME/ so the growth committed
# stays small. A crash, leak, timeout or OOM is kept under
# tests/fuzz/findings/NAME/ and fails the run (fix it and add the input to
# the corpus as a regression case). Prints one line per target: seconds,
# executions, executions per second, new corpus entries, result; and a
# Markdown table at the end (for the README / the closing note).
set -uo pipefail
cd "$(dirname "$0")/../.."

secs=600
commit=1
targets=()
CORPUS_KEEP=${CORPUS_KEEP:-12}
for a in "$@"; do
  case "$a" in
    --time=*) secs="${a#--time=}" ;;
    --no-commit) commit=0 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown flag $a" >&2; exit 2 ;;
    *) targets+=("$a") ;;
  esac
done
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(grep -A1 'edge_fuzz_target(' tests/fuzz/BUILD.bazel |
    grep -oP 'name = "\K[^"]+')
fi
[ "${#targets[@]}" -gt 0 ] || { echo "run.sh: no targets found" >&2; exit 2; }

echo "== building ${#targets[@]} fuzz targets (--config=fuzz)"
labels=()
for t in "${targets[@]}"; do labels+=("//tests/fuzz:$t"); done
bazel build --config=fuzz "${labels[@]}" >/dev/null 2>&1 || {
  bazel build --config=fuzz "${labels[@]}" 2>&1 | tail -20
  exit 1
}
work=$(mktemp -d /tmp/edge-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Bazel 4 puts --config=fuzz outputs in the same bazel-bin as normal builds:
# copy the fuzzers now, so a build run meanwhile cannot swap them for the
# corpus-replay binaries.
bin="$work/bin"
mkdir -p "$bin/tests/fuzz"
src=$(bazel info --config=fuzz bazel-bin 2>/dev/null)
for t in "${targets[@]}"; do cp "$src/tests/fuzz/$t" "$bin/tests/fuzz/$t"; done
status=0
rows=()
for t in "${targets[@]}"; do
  seeds="tests/fuzz/corpus/${t%_fuzz}"
  [ -d "$seeds" ] || seeds="tests/fuzz/corpus/$t"
  mkdir -p "$seeds" "$work/$t/corpus" "$work/$t/merged" "$work/$t/artifacts"
  cp "$seeds"/* "$work/$t/corpus/" 2>/dev/null || true
  log="$work/$t/log"
  start=$(date +%s)
  "$bin/tests/fuzz/$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
    "$work/$t/corpus" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1)
  runs=${runs:-0}
  per=$((took > 0 ? runs / took : runs))
  result=ok
  if [ "$rc" -ne 0 ] || ls "$work/$t/artifacts/"* >/dev/null 2>&1; then
    result="FINDING (rc=$rc)"
    status=1
    mkdir -p "tests/fuzz/findings/$t"
    cp "$work/$t/artifacts/"* "tests/fuzz/findings/$t/" 2>/dev/null || true
    cp "$log" "tests/fuzz/findings/$t/log.txt"
    grep -m3 -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | sed 's/^/    /'
  fi
  new=0
  if [ "$commit" = 1 ] && [ "$result" = ok ]; then
    # keep only what adds coverage over the seeds, smallest first, capped
    "$bin/tests/fuzz/$t" -merge=1 "$work/$t/merged" "$seeds" "$work/$t/corpus" \
      >"$work/$t/merge.log" 2>&1 || true
    declare -A have=()
    for f in "$seeds"/*; do [ -f "$f" ] && have[$(sha1sum <"$f" | cut -c1-40)]=1; done
    while read -r f; do
      h=$(sha1sum <"$f" | cut -c1-40)
      [ -n "${have[$h]:-}" ] && continue
      have[$h]=1
      cp "$f" "$seeds/${h:0:16}"
      new=$((new + 1))
      [ "$new" -ge "$CORPUS_KEEP" ] && break
    done < <(find "$work/$t/merged" -type f -printf '%s %p\n' | sort -n | cut -d' ' -f2-)
    unset have
  fi
  line=$(printf '%-22s %5ss %10s runs %8s/s  +%s corpus  %s' "$t" "$took" "$runs" "$per" "$new" \
    "$result")
  echo "$line"
  rows+=("| $t | $took | $runs | $per | $new | $result |")
done

echo
echo "| target | seconds | executions | exec/s | new corpus | result |"
echo "|---|--:|--:|--:|--:|---|"
printf '%s\n' "${rows[@]}"
exit "$status"
