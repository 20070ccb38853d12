#!/bin/sh
# usage: expect_status.sh STATUS PROGRAM [ARGS...]
# Runs PROGRAM and checks that it exits with STATUS exactly (meson's
# should_fail would take any failure, a sanitizer's or valgrind's included).
# Runs it through $AD_TEST_WRAPPER when a test setup gives one (valgrind).
want=$1
shift
${AD_TEST_WRAPPER:+"$AD_TEST_WRAPPER"} "$@"
status=$?
if [ "$status" -ne "$want" ]; then
    echo "expect_status: $1 exited with status $status, expected $want" >&2
    exit 1
fi
