#!/bin/sh
# Checks scripts/check-skips, the skip policy of scripts/test: on a ctest log
# whose skips are all listed in tests/allowed-skips.txt it passes; a skip
# the list does not allow for that build (a namespace test, a test as nobody,
# a sanitizer-only skip in build/) makes it fail and name the test.
check=$(dirname "$0")/../../scripts/check-skips
log=$(mktemp) out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT
fail=0
expect() {  # expect WANT(0|1) BUILD [NAME-THAT-MUST-BE-PRINTED]
  "$check" "$2" "$log" >"$out"
  got=$?
  if [ "$got" -ne "$1" ]; then echo "FAIL: $2: exit $got, want $1"; cat "$out"; fail=1; return; fi
  if [ -n "${3:-}" ] && ! grep -qF -- "$3" "$out"; then echo "FAIL: $2: $3 not named"; cat "$out"; fail=1; return; fi
  echo "ok: $2: exit $got ${3:-}"
}
printf '100%% tests passed, 0 tests failed out of 3\n\nThe following tests did not run:\n%s\n%s\n' \
  '	483 - IbverbsUtils.DevicesListsDroce0 (Skipped)' \
  '	489 - Debian/PingPong.OverMemif/rc_pingpong_s_1  # GetParam() = ibv_rc_pingpong -s 1 -n 500 (Skipped)' >"$log"
expect 0 build-asan
expect 1 build IbverbsUtils.DevicesListsDroce0
printf '\t101 - PortEalTest.DefaultArgumentsWorkUnprivileged (Skipped)\n\t102 - PortTapTest.X (Skipped)\n' >>"$log"
expect 1 build-asan PortEalTest.DefaultArgumentsWorkUnprivileged
expect 1 build-asan PortTapTest.X
printf '100%% tests passed, 0 tests failed out of 3\n' >"$log"
expect 0 build
exit $fail
