#!/bin/sh
# Checks run_expecting.sh itself: the success line with a failing exit status
# (what a sanitizer report after the line gives) fails, as does exit 0 without
# the line; only both together pass.
here=$(dirname "$0")
run=$here/run_expecting.sh
fail=0
check() {  # check WANT(0|1) SCRIPT
  sh "$run" '^ok: done$' sh -c "$2" >/dev/null 2>&1
  got=$?
  [ "$got" -ne 0 ] && got=1
  if [ "$got" -ne "$1" ]; then
    echo "FAIL: run_expecting on [$2] gave $got, want $1"
    fail=1
  else
    echo "ok: run_expecting on [$2] gave $got"
  fi
}
check 0 'echo "ok: done"'
check 1 'echo "ok: done"; echo "==1==ERROR: AddressSanitizer: heap-use-after-free" >&2; exit 1'
check 1 'echo "ok: done"; exit 23'
check 1 'echo "something else"'
check 1 'kill -SEGV $$'
exit $fail
