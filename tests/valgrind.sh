#!/bin/sh
# The exe_wrapper of `meson test --setup valgrind` (see meson.build): runs a
# test's program under valgrind's memcheck. The test fails on any memcheck
# error and on any block left allocated at exit, still-reachable ones
# included: every test frees all it allocates, and the library keeps nothing
# at exit (the thread pool's workers are joined), so any such block is a leak.
#
# --soname-synonyms=somalloc=nouserintercepts leaves alone the malloc that
# test_steady_state defines to count calls; every other program has none,
# and valgrind still replaces the C library's.
#
# A test whose program is an interpreter (python3 for docs and exports, sh
# for the examples' exit-status checks) runs natively: memcheck would check
# python's or the shell's own memory, not ours. Those tests run the programs
# of ours they start through this script, named in AD_TEST_WRAPPER.
case "${1##*/}" in
python3* | sh | dash | bash)
    AD_TEST_WRAPPER=$0
    export AD_TEST_WRAPPER
    exec "$@"
    ;;
esac
exec valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=all \
    --errors-for-leak-kinds=all --soname-synonyms=somalloc=nouserintercepts "$@"
