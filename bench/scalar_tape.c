/*
 * Scalar tape overhead: what one recorded scalar op costs, in time and in
 * tape memory, next to two references computing the same gradient.
 *
 * The function, on two inputs a and b, is a loop of three scalar ops,
 *     y = b;  repeat K times: y = sin(y * a) + b
 * so it records 3K ops (mul, sin, add). Its gradient (dy/da, dy/db) is
 * computed four ways, each timed forward + backward, as the median of
 * --reps runs after one warm-up run:
 *   - libautodiff, tensors: 0-d float64 tensors on a tape, then ad_backward
 *     (the general path: any op, higher order);
 *   - libautodiff, ad_real: the first-order scalar recorder (autodiff/real.h)
 *     on a tape, then ad_real_backward;
 *   - hand-written: the derivative coded by hand, carried forward alongside
 *     the value (two tangents; no memory at all);
 *   - minimal C tape: the smallest reasonable Wengert list, a 32-byte node
 *     (value, two partials, two input indices) and a reverse sweep over an
 *     adjoint array.
 * The three gradients must agree, or the benchmark fails.
 *
 * Tape bytes per op: ad_tape_bytes_used() after the forward pass (the arena:
 * nodes, shapes, values), and the peak heap the tape holds through a counting
 * ad_allocator over forward + backward on a fresh tape (arena blocks as
 * reserved, the node list, the backward's gradients).
 *
 * Usage: scalar_tape [--ops N] [--reps R]
 */
#include "bench_util.h"

#include <math.h>
#include <stdbool.h>

#include "autodiff/autodiff.h"
#include "autodiff/real.h"

static const double INPUT_A = 0.9, INPUT_B = 0.3;

/* ---- libautodiff ------------------------------------------------------------------- */

typedef struct gradient {
    double y, da, db;
} gradient;

/* Records the function on tape (reset first) and backpropagates. */
static gradient ours_run(ad_tape *tape, long iterations, size_t *forward_bytes, double *seconds)
{
    double t0 = bench_now();
    ad_tape_reset(tape);
    ad_tensor *a = ad_requires_grad(ad_scalar(tape, INPUT_A));
    ad_tensor *b = ad_requires_grad(ad_scalar(tape, INPUT_B));
    ad_tensor *y = b;
    for (long k = 0; k < iterations; k++)
        y = ad_add(ad_sin(ad_mul(y, a)), b);
    double t1 = bench_now();
    if (forward_bytes)
        *forward_bytes = ad_tape_bytes_used(tape);
    double t2 = bench_now();
    ad_status st = ad_backward(y, NULL);
    double t3 = bench_now();
    if (st != AD_OK) {
        fprintf(stderr, "scalar_tape: %s: %s\n", ad_status_string(st), ad_tape_message(tape));
        exit(1);
    }
    seconds[0] = t1 - t0;
    seconds[1] = t3 - t2;
    return (gradient){ad_value(y), ad_grad_value(a), ad_grad_value(b)};
}

/* The same function with ad_real on tape (reset first). */
static gradient real_run(ad_tape *tape, long iterations, double *seconds)
{
    double t0 = bench_now();
    ad_tape_reset(tape);
    ad_real a = ad_real_var(tape, INPUT_A), b = ad_real_var(tape, INPUT_B);
    ad_real y = b;
    for (long k = 0; k < iterations; k++)
        y = ad_real_add(tape, ad_real_sin(tape, ad_real_mul(tape, y, a)), b);
    double t1 = bench_now();
    ad_status st = ad_real_backward(tape, y);
    double t2 = bench_now();
    if (st != AD_OK) {
        fprintf(stderr, "scalar_tape: %s: %s\n", ad_status_string(st), ad_tape_message(tape));
        exit(1);
    }
    seconds[0] = t1 - t0;
    seconds[1] = t2 - t1;
    return (gradient){y.value, ad_real_grad(tape, a), ad_real_grad(tape, b)};
}

/* An ad_allocator that tracks the bytes it holds and their peak. A size
 * header in front of each block lets free know the size. */
typedef struct counting {
    size_t held, peak;
} counting;

static void *counting_alloc(size_t size, void *ctx)
{
    counting *c = ctx;
    size_t *p = malloc(sizeof(max_align_t) + size);
    if (!p)
        return NULL;
    *p = size;
    c->held += size;
    if (c->held > c->peak)
        c->peak = c->held;
    return (char *)p + sizeof(max_align_t);
}

static void counting_free(void *ptr, void *ctx)
{
    if (!ptr)
        return;
    counting *c = ctx;
    size_t *p = (size_t *)((char *)ptr - sizeof(max_align_t));
    c->held -= *p;
    free(p);
}

/* ---- Hand-written: forward-mode tangents ---------------------------------------- */

static gradient handwritten_run(long iterations)
{
    const double a = INPUT_A, b = INPUT_B;
    double y = b, dy_da = 0, dy_db = 1;
    for (long k = 0; k < iterations; k++) {
        double t = y * a;
        double dt_da = dy_da * a + y, dt_db = dy_db * a;
        double c = cos(t);
        y = sin(t) + b;
        dy_da = c * dt_da;
        dy_db = c * dt_db + 1;
    }
    return (gradient){y, dy_da, dy_db};
}

/* ---- Minimal C tape ------------------------------------------------------------------ */

/* 32 bytes: the value, the partial derivative with respect to each input, and
 * the inputs' indices. Node 0 is a constant 0 that unary ops and leaves name
 * as their unused inputs, with partial 0, so the sweep has no branch. */
typedef struct mini_node {
    double value;
    double partial[2];
    int32_t input[2];
} mini_node;

typedef struct mini_tape {
    mini_node *nodes;
    double *adjoint;
    size_t n, cap;
} mini_tape;

static int32_t mini_push(mini_tape *t, double value, double p0, int32_t i0, double p1, int32_t i1)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->nodes = realloc(t->nodes, t->cap * sizeof *t->nodes);
        t->adjoint = realloc(t->adjoint, t->cap * sizeof *t->adjoint);
        if (!t->nodes || !t->adjoint) {
            fprintf(stderr, "scalar_tape: out of memory\n");
            exit(1);
        }
    }
    t->nodes[t->n] = (mini_node){value, {p0, p1}, {i0, i1}};
    return (int32_t)t->n++;
}

static int32_t mini_leaf(mini_tape *t, double v)
{
    return mini_push(t, v, 0, 0, 0, 0);
}

static int32_t mini_mul(mini_tape *t, int32_t i, int32_t j)
{
    double x = t->nodes[i].value, y = t->nodes[j].value;
    return mini_push(t, x * y, y, i, x, j);
}

static int32_t mini_sin(mini_tape *t, int32_t i)
{
    double x = t->nodes[i].value;
    return mini_push(t, sin(x), cos(x), i, 0, 0);
}

static int32_t mini_add(mini_tape *t, int32_t i, int32_t j)
{
    return mini_push(t, t->nodes[i].value + t->nodes[j].value, 1, i, 1, j);
}

static void mini_backward(mini_tape *t, int32_t out)
{
    memset(t->adjoint, 0, t->n * sizeof *t->adjoint);
    t->adjoint[out] = 1;
    for (int32_t k = out; k > 0; k--) {
        const mini_node *node = &t->nodes[k];
        double g = t->adjoint[k];
        t->adjoint[node->input[0]] += g * node->partial[0];
        t->adjoint[node->input[1]] += g * node->partial[1];
    }
}

static gradient mini_run(mini_tape *t, long iterations, double *seconds)
{
    double t0 = bench_now();
    t->n = 0;
    mini_leaf(t, 0); /* node 0: the constant zero */
    int32_t a = mini_leaf(t, INPUT_A), b = mini_leaf(t, INPUT_B);
    int32_t y = b;
    for (long k = 0; k < iterations; k++)
        y = mini_add(t, mini_sin(t, mini_mul(t, y, a)), b);
    double t1 = bench_now();
    mini_backward(t, y);
    double t2 = bench_now();
    seconds[0] = t1 - t0;
    seconds[1] = t2 - t1;
    return (gradient){t->nodes[y].value, t->adjoint[a], t->adjoint[b]};
}

/* ---- Driver --------------------------------------------------------------------------- */

static bool agree(gradient x, gradient y)
{
    return fabs(x.y - y.y) <= 1e-12 * fabs(y.y) + 1e-12 &&
           fabs(x.da - y.da) <= 1e-9 * fabs(y.da) + 1e-12 &&
           fabs(x.db - y.db) <= 1e-9 * fabs(y.db) + 1e-12;
}

int main(int argc, char **argv)
{
    long n_ops = bench_arg(argc, argv, "--ops", 1000000);
    long reps = bench_arg(argc, argv, "--reps", 7);
    if (n_ops < 3 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: scalar_tape [--ops N >= 3] [--reps 1..1000]\n");
        return 2;
    }
    long iterations = n_ops / 3;
    double ops = 3.0 * (double)iterations;
    double *total = calloc((size_t)reps, sizeof *total);
    double *forward = calloc((size_t)reps, sizeof *forward);
    double *backward = calloc((size_t)reps, sizeof *backward);
    if (!total || !forward || !backward)
        return 1;

    /* Tape memory, on a fresh tape with a counting allocator. */
    counting count = {0, 0};
    ad_tape *tape;
    if (ad_tape_create_with(&tape, &(ad_allocator){counting_alloc, counting_free, &count}) != AD_OK)
        return 1;
    size_t forward_bytes = 0;
    double seconds[2];
    gradient g_ours = ours_run(tape, iterations, &forward_bytes, seconds);
    size_t peak_bytes = count.peak;

    /* libautodiff: the warm-up above, then reps on the recycled tape. */
    for (long r = 0; r < reps; r++) {
        ours_run(tape, iterations, NULL, seconds);
        forward[r] = seconds[0];
        backward[r] = seconds[1];
        total[r] = seconds[0] + seconds[1];
    }
    double ours_total = bench_median(total, (size_t)reps);
    double ours_forward = bench_median(forward, (size_t)reps);
    double ours_backward = bench_median(backward, (size_t)reps);
    ad_tape_free(tape);

    /* ad_real: a fresh tape, the warm-up run sizes its arrays, then reps. */
    if (ad_tape_create(&tape) != AD_OK)
        return 1;
    gradient g_real = real_run(tape, iterations, seconds);
    size_t real_bytes = ad_real_bytes(tape);
    for (long r = 0; r < reps; r++) {
        real_run(tape, iterations, seconds);
        forward[r] = seconds[0];
        backward[r] = seconds[1];
        total[r] = seconds[0] + seconds[1];
    }
    double real_total = bench_median(total, (size_t)reps);
    double real_forward = bench_median(forward, (size_t)reps);
    double real_backward = bench_median(backward, (size_t)reps);
    ad_tape_free(tape);

    /* Hand-written. */
    gradient g_hand = handwritten_run(iterations);
    for (long r = 0; r < reps; r++) {
        double t0 = bench_now();
        gradient g = handwritten_run(iterations);
        total[r] = bench_now() - t0;
        bench_sink = g.da;
    }
    double hand_total = bench_median(total, (size_t)reps);

    /* Minimal C tape. */
    mini_tape mini = {NULL, NULL, 0, 0};
    gradient g_mini = mini_run(&mini, iterations, seconds);
    for (long r = 0; r < reps; r++) {
        mini_run(&mini, iterations, seconds);
        forward[r] = seconds[0];
        backward[r] = seconds[1];
        total[r] = seconds[0] + seconds[1];
    }
    double mini_total = bench_median(total, (size_t)reps);
    double mini_forward = bench_median(forward, (size_t)reps);
    double mini_backward = bench_median(backward, (size_t)reps);
    free(mini.nodes);
    free(mini.adjoint);

    if (!agree(g_ours, g_hand) || !agree(g_mini, g_hand) || !agree(g_real, g_hand)) {
        fprintf(stderr,
                "scalar_tape: gradients disagree: ours (%.17g, %.17g), ad_real (%.17g, %.17g), "
                "hand (%.17g, %.17g), minimal (%.17g, %.17g)\n",
                g_ours.da, g_ours.db, g_real.da, g_real.db, g_hand.da, g_hand.db, g_mini.da,
                g_mini.db);
        return 1;
    }
    fprintf(stderr, "scalar_tape: %.0f ops, y = %.17g, dy/da = %.17g, dy/db = %.17g\n", ops,
            g_hand.y, g_hand.da, g_hand.db);

    const double ns = 1e9 / ops;
    bench_emit("scalar_ours_ns_per_op", ours_total * ns, "ns/op", 1);
    bench_emit("scalar_ours_forward_ns_per_op", ours_forward * ns, "ns/op", 1);
    bench_emit("scalar_ours_backward_ns_per_op", ours_backward * ns, "ns/op", 1);
    bench_emit("scalar_real_ns_per_op", real_total * ns, "ns/op", 1);
    bench_emit("scalar_real_forward_ns_per_op", real_forward * ns, "ns/op", 1);
    bench_emit("scalar_real_backward_ns_per_op", real_backward * ns, "ns/op", 1);
    /* Capacity (arrays grow by doubling), nodes and adjoints. */
    bench_emit("scalar_real_bytes_per_op", (double)real_bytes / ops, "B/op", 1);
    bench_emit("scalar_handwritten_ns_per_op", hand_total * ns, "ns/op", 1);
    bench_emit("scalar_minimal_ns_per_op", mini_total * ns, "ns/op", 1);
    bench_emit("scalar_minimal_forward_ns_per_op", mini_forward * ns, "ns/op", 1);
    bench_emit("scalar_minimal_backward_ns_per_op", mini_backward * ns, "ns/op", 1);
    bench_emit("scalar_ours_tape_bytes_per_op", (double)forward_bytes / ops, "B/op", 1);
    bench_emit("scalar_ours_peak_heap_bytes_per_op", (double)peak_bytes / ops, "B/op", 1);
    bench_emit("scalar_minimal_tape_bytes_per_op", (double)sizeof(mini_node), "B/op", 1);
    bench_emit("scalar_minimal_peak_heap_bytes_per_op",
               (double)(mini.cap * (sizeof(mini_node) + sizeof(double))) / ops, "B/op", 1);
    free(total);
    free(forward);
    free(backward);
    return 0;
}
