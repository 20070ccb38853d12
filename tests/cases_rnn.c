/* Gradient-check cases for the LSTM cell's gate ops (src/ops/rnn_cell.c):
 * lstm_cell_c and lstm_cell_h are op-table rows. Inputs are drawn in
 * [-3, 3); the cases scale the cell state by 2/3, so gates are in [-3, 3)
 * (into the sigmoids' and tanh's curved parts, short of saturation) and
 * states in [-2, 2). Besides each op alone, a whole step (the gates feed
 * both ops, so their gradient is the sum of two rules) and two chained steps
 * (c' feeds the next step's lstm_cell_c and its own lstm_cell_h) are checked,
 * with batch shapes of 0, 1 and 2 leading dims and H from 1 to 4. */
#include "grad_cases.h"

#include <stddef.h>

/* The state input, scaled into [-2, 2). */
static ad_tensor *state(ad_tensor *x)
{
    return ad_mul_scalar(x, 2.0 / 3.0);
}

static ad_tensor *f_lstm_cell_c(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_lstm_cell_c(in[0], state(in[1]));
}

static ad_tensor *f_lstm_cell_h(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    return ad_lstm_cell_h(in[0], state(in[1]));
}

/* One step, [h', c'] along the last axis: g feeds both ops, c' feeds h'. */
static ad_tensor *f_lstm_step(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    ad_tensor *c1 = ad_lstm_cell_c(in[0], state(in[1]));
    ad_tensor *out[2] = {ad_lstm_cell_h(in[0], c1), c1};
    return ad_concat(2, out, -1);
}

/* Two steps with gates g1, g2 from c0, [h1, h2, c2] along the last axis. */
static ad_tensor *f_lstm_two_steps(ad_tape *tape, size_t n, ad_tensor *const *in, void *ctx)
{
    (void)tape, (void)n, (void)ctx;
    ad_tensor *c1 = ad_lstm_cell_c(in[0], state(in[2]));
    ad_tensor *h1 = ad_lstm_cell_h(in[0], c1);
    ad_tensor *c2 = ad_lstm_cell_c(in[1], c1);
    ad_tensor *out[3] = {h1, ad_lstm_cell_h(in[1], c2), c2};
    return ad_concat(3, out, -1);
}

// clang-format off
#define TWO(d0, s0, d1, s1) .n_inputs = 2, .ndim = {d0, d1}, .shape = {s0, s1}
#define THREE(d0, s0, d1, s1, d2, s2) .n_inputs = 3, .ndim = {d0, d1, d2}, .shape = {s0, s1, s2}
#define S(...) {__VA_ARGS__}
#define RANGE .lo = -3, .hi = 3

const grad_case cases_rnn[] = {
    {.op = "lstm_cell_c", .name = "g [3,8], c [3,2]", .f = f_lstm_cell_c,
     TWO(2, S(3, 8), 2, S(3, 2)), RANGE},
    {.op = "lstm_cell_c", .name = "g [2,3,12], c [2,3,3]", .f = f_lstm_cell_c,
     TWO(3, S(2, 3, 12), 3, S(2, 3, 3)), RANGE},
    {.op = "lstm_cell_c", .name = "1-D g [16], c [4]", .f = f_lstm_cell_c,
     TWO(1, S(16), 1, S(4)), RANGE},
    {.op = "lstm_cell_c", .name = "H 1: g [4,4], c [4,1]", .f = f_lstm_cell_c,
     TWO(2, S(4, 4), 2, S(4, 1)), RANGE},
    {.op = "lstm_cell_c", .name = "g [5,16], c [5,4] (20 outputs)", .f = f_lstm_cell_c,
     TWO(2, S(5, 16), 2, S(5, 4)), RANGE},
    {.op = "lstm_cell_h", .name = "g [3,8], c' [3,2]", .f = f_lstm_cell_h,
     TWO(2, S(3, 8), 2, S(3, 2)), RANGE},
    {.op = "lstm_cell_h", .name = "g [2,3,12], c' [2,3,3]", .f = f_lstm_cell_h,
     TWO(3, S(2, 3, 12), 3, S(2, 3, 3)), RANGE},
    {.op = "lstm_cell_h", .name = "1-D g [16], c' [4]", .f = f_lstm_cell_h,
     TWO(1, S(16), 1, S(4)), RANGE},
    {.op = "lstm_cell_h", .name = "H 1: g [4,4], c' [4,1]", .f = f_lstm_cell_h,
     TWO(2, S(4, 4), 2, S(4, 1)), RANGE},
    {.op = "lstm_cell_h", .name = "a step: g [3,8] feeds both ops, c [3,2]", .f = f_lstm_step,
     TWO(2, S(3, 8), 2, S(3, 2)), RANGE},
    {.op = "lstm_cell_h", .name = "a 1-D step: g [12], c [3]", .f = f_lstm_step,
     TWO(1, S(12), 1, S(3)), RANGE},
    {.op = "lstm_cell_c", .name = "two steps: g1, g2 [2,8], c0 [2,2]", .f = f_lstm_two_steps,
     THREE(2, S(2, 8), 2, S(2, 8), 2, S(2, 2)), RANGE},
};
// clang-format on

const size_t n_cases_rnn = sizeof cases_rnn / sizeof cases_rnn[0];
