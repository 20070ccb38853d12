#!/bin/sh
# Runs a Fashion-MNIST example (the first argument) with --data pointing
# nowhere and checks that it exits with status 2 and prints the line that
# installs the data set. Used by examples/meson.build. Runs the example
# through $AD_TEST_WRAPPER when a test setup gives one (valgrind).
out=$(${AD_TEST_WRAPPER:+"$AD_TEST_WRAPPER"} "$1" --data /nonexistent/fashion-mnist 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$status" -ne 2 ]; then
    echo "expect_missing_data: exit status $status, expected 2" >&2
    exit 1
fi
if ! printf '%s\n' "$out" | grep -qx 'apt-get install dataset-fashion-mnist'; then
    echo "expect_missing_data: no line 'apt-get install dataset-fashion-mnist'" >&2
    exit 1
fi
