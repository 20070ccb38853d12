#!/bin/sh
# usage: char_lm_quick.sh PATH/TO/char_lm
# The char_lm example's test: without its text it exits 2 and prints the
# apt-get line; with the text (the fortunes package; else exit 77, skipped)
# a few steps of the LSTM train, save, resume (continuing the CSV) and
# sample, and a few steps of the GPT do the same. Runs through
# $AD_TEST_WRAPPER when a test setup gives one (valgrind).
exe=$1
run() { ${AD_TEST_WRAPPER:+"$AD_TEST_WRAPPER"} "$exe" "$@"; }
fail() { echo "char_lm_quick: $*" >&2; exit 1; }

out=$(run --data /nonexistent/fortunes 2>&1)
[ $? -eq 2 ] || fail "missing text: expected exit status 2"
printf '%s\n' "$out" | grep -qx 'apt-get install fortunes' || fail "no apt-get line"
[ -d /usr/share/games/fortunes ] || { echo "skipped: apt-get install fortunes"; exit 77; }

dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
small="--batch 8 --seq 32 --hidden 48 --eval-every 10 --sample 40"
run --model lstm --steps 20 $small --save "$dir/lstm.safetensors" --csv "$dir/lstm.csv" \
    > "$dir/out1" || fail "lstm training failed"
cat "$dir/out1"
grep -q '^step     20 ' "$dir/out1" || fail "no step 20 line"
[ -s "$dir/lstm.optim.safetensors" ] || fail "no optimizer state saved"
run --model lstm --steps 30 $small --resume "$dir/lstm.safetensors" --csv "$dir/lstm.csv" \
    > "$dir/out2" || fail "lstm resume failed"
cat "$dir/out2"
grep -q 'resumed .* at step 20' "$dir/out2" || fail "did not resume at step 20"
grep -q 'trained 10 steps (20 to 30)' "$dir/out2" || fail "did not train steps 20 to 30"
[ "$(wc -l < "$dir/lstm.csv")" -eq 4 ] || fail "the CSV should hold a header and 3 rows"
grep -q -- '--- end of sample ---' "$dir/out2" || fail "no sample"
run --model gpt --steps 10 --layers 1 --heads 2 $small --save "$dir/gpt.safetensors" \
    > "$dir/out3" || fail "gpt training failed"
cat "$dir/out3"
grep -q 'validation [0-9.]* bits/char' "$dir/out3" || fail "no validation figure"
exit 0
