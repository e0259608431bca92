#!/bin/sh
# run_expecting.sh PATTERN PROGRAM [ARG...]: runs PROGRAM, prints its output
# (stdout and stderr), and passes only if it exits 0 AND some line of its
# output matches PATTERN (grep -E). ctest's PASS_REGULAR_EXPRESSION alone
# ignores the exit status, so a sanitizer report printed after the success
# line would pass.
pattern=$1
shift
out=$("$@" 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$status" -ne 0 ]; then
  echo "run_expecting: $1 exited with status $status" >&2
  exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq -- "$pattern"; then
  echo "run_expecting: no line of $1's output matches: $pattern" >&2
  exit 1
fi
