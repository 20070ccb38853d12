/* The Fashion-MNIST examples' shared code: see train_common.h. */
#include "train_common.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLASSES 10
#define BAR_WIDTH 24
#define REDRAW_SECONDS 0.1 /* the bar is redrawn at most this often */

/* ==== Options ============================================================================== */

static const char *optimizer_name(train_optimizer o)
{
    return o == TRAIN_SGD ? "sgd" : o == TRAIN_ADAM ? "adam" : "adamw";
}

static double learning_rate(const train_options *opts)
{
    if (opts->lr > 0)
        return opts->lr;
    return opts->optimizer == TRAIN_SGD ? TRAIN_DEFAULT_LR_SGD : TRAIN_DEFAULT_LR_ADAM;
}

static void usage(const train_example *ex, FILE *out)
{
    const train_options *d = &ex->defaults;
    fprintf(out, "usage: %s [options]\n%s\n\noptions (--name VALUE or --name=VALUE):\n", ex->name,
            ex->summary);
    fprintf(out, "  --epochs N          passes over the training set (default %d)\n", d->epochs);
    fprintf(out, "  --batch-size N      examples per step (default %" PRId64 ")\n", d->batch_size);
    fprintf(out,
            "  --optimizer NAME    sgd, adam or adamw (default %s)\n"
            "  --lr X              learning rate (default %g; for another --optimizer\n"
            "                      %g with adam and adamw, %g with sgd)\n"
            "  --momentum X        SGD momentum (default %g)\n",
            optimizer_name(d->optimizer), learning_rate(d), TRAIN_DEFAULT_LR_ADAM,
            TRAIN_DEFAULT_LR_SGD, d->momentum);
    fprintf(out,
            "  --schedule NAME     constant, or cosine: decay the rate to 0 by the last step\n"
            "                      (default %s)\n",
            d->schedule == TRAIN_LR_COSINE ? "cosine" : "constant");
    fprintf(out,
            "  --seed N            seed of the initial weights and the shuffling (default %" PRIu64
            ")\n",
            d->seed);
    fprintf(out, "  --threads N         threads for matrix products (default: the library's, %d)\n",
            ad_num_threads());
    fprintf(out,
            "  --data DIR          the Fashion-MNIST files, .gz or not (default %s)\n"
            "  --save PATH         at the end, write the parameters to PATH (safetensors) and\n"
            "                      the optimizer state to PATH with .optim.safetensors\n"
            "  --csv PATH          write the loss curve and test accuracies to PATH\n",
            d->data_dir);
    fprintf(out,
            "  --log-every N       steps between CSV rows and plain progress lines (default "
            "%" PRId64 ")\n",
            d->log_every);
    fprintf(
        out,
        "  --limit-batches N   at most N training and N test batches per epoch (quick runs)\n"
        "  --target PCT        exit 1 unless the final test accuracy reaches PCT percent\n"
        "  --skip-if-missing   exit 77 (\"skipped\" to test harnesses) when the data is missing\n"
        "  --help, -h          print this and exit\n");
}

/* Strict numbers: the whole string, in range. */
static bool parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static bool parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static int bad_option(const train_example *ex, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int bad_option(const train_example *ex, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", ex->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    usage(ex, stderr);
    return TRAIN_EXIT_USAGE;
}

/* The options that take a value. */
static bool takes_value(const char *name)
{
    static const char *const names[] = {
        "--epochs", "--batch-size", "--lr",        "--momentum",
        "--seed",   "--threads",    "--log-every", "--limit-batches",
        "--target", "--optimizer",  "--schedule",  "--data",
        "--save",   "--csv"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i]))
            return true;
    return false;
}

int train_parse_options(const train_example *ex, int argc, char **argv, train_options *opts)
{
    *opts = ex->defaults;
    bool lr_given = false;
    for (int i = 1; i < argc; i++) {
        /* "--name=value" or "--name value". */
        char name[32];
        const char *arg = argv[i], *eq = strchr(arg, '='), *value = NULL;
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if ((strncmp(arg, "--", 2) != 0 && strcmp(arg, "-h") != 0) || len >= sizeof name)
            return bad_option(ex, "unknown argument %s", arg);
        memcpy(name, arg, len);
        name[len] = '\0';

        bool flag = !strcmp(name, "--help") || !strcmp(name, "--skip-if-missing");
        if (flag && eq)
            return bad_option(ex, "%s takes no value (got %s)", name, eq + 1);
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            usage(ex, stdout);
            return TRAIN_EXIT_OK;
        }
        if (!strcmp(name, "--skip-if-missing")) {
            opts->skip_if_missing = true;
            continue;
        }
        if (!takes_value(name))
            return bad_option(ex, "unknown option %s", name);
        value = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!value)
            return bad_option(ex, "%s needs a value", name);
        if (!*value)
            return bad_option(ex, "%s: empty value", name);

        int64_t n = 0;
        bool ok = true;
        if (!strcmp(name, "--epochs")) {
            if ((ok = parse_int64(value, 1, 100000, &n)))
                opts->epochs = (int)n;
        } else if (!strcmp(name, "--batch-size")) {
            ok = parse_int64(value, 1, 1 << 20, &opts->batch_size);
        } else if (!strcmp(name, "--lr")) {
            ok = parse_double(value, 1e-12, 1e3, &opts->lr);
            lr_given = true;
        } else if (!strcmp(name, "--momentum")) {
            ok = parse_double(value, 0, 1, &opts->momentum) && opts->momentum < 1;
        } else if (!strcmp(name, "--seed")) {
            ok = parse_seed(value, &opts->seed);
        } else if (!strcmp(name, "--threads")) {
            if ((ok = parse_int64(value, 1, 1024, &n)))
                opts->threads = (int)n;
        } else if (!strcmp(name, "--log-every")) {
            ok = parse_int64(value, 1, INT64_MAX, &opts->log_every);
        } else if (!strcmp(name, "--limit-batches")) {
            ok = parse_int64(value, 1, INT64_MAX, &opts->limit_batches);
        } else if (!strcmp(name, "--target")) {
            ok = parse_double(value, 0, 100, &opts->target);
        } else if (!strcmp(name, "--optimizer")) {
            if (!strcmp(value, "sgd"))
                opts->optimizer = TRAIN_SGD;
            else if (!strcmp(value, "adam"))
                opts->optimizer = TRAIN_ADAM;
            else if (!strcmp(value, "adamw"))
                opts->optimizer = TRAIN_ADAMW;
            else
                return bad_option(ex, "%s: %s is not sgd, adam or adamw", name, value);
        } else if (!strcmp(name, "--schedule")) {
            if (!strcmp(value, "constant"))
                opts->schedule = TRAIN_LR_CONSTANT;
            else if (!strcmp(value, "cosine"))
                opts->schedule = TRAIN_LR_COSINE;
            else
                return bad_option(ex, "%s: %s is not constant or cosine", name, value);
        } else if (!strcmp(name, "--data")) {
            opts->data_dir = value;
        } else if (!strcmp(name, "--save")) {
            opts->save_path = value;
        } else { /* --csv */
            opts->csv_path = value;
        }
        if (!ok)
            return bad_option(ex, "%s: %s is not a number in range", name, value);
    }
    /* The example's learning rate is tuned for its optimizer: another one gets its own. */
    if (!lr_given && opts->optimizer != ex->defaults.optimizer)
        opts->lr = 0;
    if (opts->threads > 0)
        ad_set_num_threads(opts->threads);
    return TRAIN_CONTINUE;
}

/* ==== Data ================================================================================= */

typedef struct fashion_data {
    ad_idx train_images, train_labels, test_images, test_labels;
} fashion_data;

static void fashion_data_free(fashion_data *d)
{
    ad_idx_free(&d->train_images);
    ad_idx_free(&d->train_labels);
    ad_idx_free(&d->test_images);
    ad_idx_free(&d->test_labels);
}

/* The path of file `name` in dir: name.gz if it exists, else name if that exists. False, with
 * path naming the .gz file, if neither does. */
static bool find_file(char *path, size_t size, const char *dir, const char *name)
{
    snprintf(path, size, "%s/%s", dir, name);
    if (access(path, F_OK) == 0)
        return true;
    snprintf(path, size, "%s/%s.gz", dir, name);
    return access(path, F_OK) == 0;
}

static int missing_data(const train_example *ex, const train_options *opts, const char *path)
{
    fprintf(stderr,
            "%s: the Fashion-MNIST data set is missing (no %s).\n"
            "Install it with\n"
            "apt-get install dataset-fashion-mnist\n"
            "or give --data DIR, a directory holding train-images-idx3-ubyte, "
            "train-labels-idx1-ubyte,\nt10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            "(each gzipped or not).\n",
            ex->name, path);
    if (opts->skip_if_missing) {
        fprintf(stderr, "%s: skipped\n", ex->name);
        return TRAIN_EXIT_SKIP;
    }
    return TRAIN_EXIT_NO_DATA;
}

/* Images [n, rows, cols] of the example's item size, with n labels in [0, CLASSES). */
static bool check_pair(const train_example *ex, const char *what, const ad_idx *images,
                       const ad_idx *labels)
{
    int64_t item = 1;
    for (int k = 0; k < ex->item_ndim; k++)
        item *= ex->item_shape[k];
    if (images->ndim != 3 || images->item_size != item || labels->ndim != 1 ||
        labels->count != images->count || images->count == 0) {
        fprintf(stderr,
                "%s: the %s files do not fit: %" PRId64 " images of %" PRId64
                " bytes (want %" PRId64 "), %" PRId64 " labels\n",
                ex->name, what, images->count, images->item_size, item, labels->count);
        return false;
    }
    for (int64_t i = 0; i < labels->count; i++)
        if (labels->data[i] >= CLASSES) {
            fprintf(stderr, "%s: %s label %" PRId64 " is %d, not a class in 0..%d\n", ex->name,
                    what, i, labels->data[i], CLASSES - 1);
            return false;
        }
    return true;
}

static int load_data(const train_example *ex, const train_options *opts, fashion_data *d)
{
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    ad_idx *slots[4] = {&d->train_images, &d->train_labels, &d->test_images, &d->test_labels};
    char path[4096], err[512];
    if (strlen(opts->data_dir) > sizeof path - 64) {
        fprintf(stderr, "%s: --data: path too long\n", ex->name);
        return TRAIN_EXIT_FAILURE;
    }
    for (int k = 0; k < 4; k++) {
        if (!find_file(path, sizeof path, opts->data_dir, names[k]))
            return missing_data(ex, opts, path);
        if (ad_idx_load(path, slots[k], err, sizeof err) != AD_OK) {
            fprintf(stderr, "%s: %s\n", ex->name, err);
            return TRAIN_EXIT_FAILURE;
        }
    }
    if (!check_pair(ex, "training", &d->train_images, &d->train_labels) ||
        !check_pair(ex, "test", &d->test_images, &d->test_labels))
        return TRAIN_EXIT_FAILURE;
    return TRAIN_EXIT_OK;
}

/* ==== Small helpers ======================================================================== */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "1:05", "1:02:03", or "--:--" when unknown. */
static const char *format_duration(char *buf, size_t size, double seconds)
{
    if (!(seconds >= 0 && seconds < 1e7)) {
        snprintf(buf, size, "--:--");
        return buf;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

/* Rows of logits [m, classes] whose largest entry (the first, on ties) is at the label. */
static int64_t count_correct(const ad_tensor *logits, const int64_t *labels, int64_t m)
{
    int64_t classes = ad_tensor_dim(logits, 1), correct = 0;
    for (int64_t i = 0; i < m; i++) {
        int64_t best = 0;
        double best_value = ad_tensor_get(logits, i * classes);
        for (int64_t c = 1; c < classes; c++) {
            double v = ad_tensor_get(logits, i * classes + c);
            if (v > best_value) {
                best = c;
                best_value = v;
            }
        }
        correct += best == labels[i];
    }
    return correct;
}

/* Loss and accuracy over some examples. loss_sum adds each batch's mean loss times its size. */
typedef struct meter {
    double loss_sum;
    int64_t examples, correct;
} meter;

static void meter_add(meter *m, double loss, int64_t examples, int64_t correct)
{
    m->loss_sum += loss * (double)examples;
    m->examples += examples;
    m->correct += correct;
}

static double meter_loss(const meter *m)
{
    return m->examples ? m->loss_sum / (double)m->examples : NAN;
}

static double meter_accuracy(const meter *m)
{
    return m->examples ? (double)m->correct / (double)m->examples : NAN;
}

/* ==== The trainer ========================================================================== */

typedef struct trainer {
    const train_example *ex;
    const train_options *opts;
    ad_module *model;
    fashion_data data;
    ad_tape *tape;
    ad_optim *optim;
    ad_tensor *input; /* [B, item...] float32, persistent, refilled every step */
    int64_t *labels;  /* [B] */
    ad_batches *train_batches, *test_batches;
    FILE *csv;
    bool bar, plain; /* see train_common.h: where progress goes */
    bool bar_drawn;  /* a bar is on screen and must be cleared before printing */
    int64_t step;    /* steps taken, over all epochs */
    int64_t steps_per_epoch, total_steps;
} trainer;

/* Prints the tape's error for `what` and returns TRAIN_EXIT_FAILURE. */
static int tape_failure(const trainer *t, const char *what, ad_status status)
{
    fprintf(stderr, "%s: %s failed: %s: %s\n", t->ex->name, what, ad_status_string(status),
            ad_tape_message(t->tape));
    return TRAIN_EXIT_FAILURE;
}

static void clear_bar(trainer *t)
{
    if (t->bar_drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        t->bar_drawn = false;
    }
}

static ad_status make_optimizer(trainer *t)
{
    const train_options *o = t->opts;
    double lr = learning_rate(o);
    /* torch.optim's settings, with our learning rate (and momentum). */
    switch (o->optimizer) {
    case TRAIN_SGD: {
        ad_sgd_config sgd = ad_sgd_defaults();
        sgd.lr = lr;
        sgd.momentum = o->momentum;
        return ad_optim_sgd(&t->optim, t->model, &sgd);
    }
    case TRAIN_ADAM:
    case TRAIN_ADAMW: {
        bool adamw = o->optimizer == TRAIN_ADAMW;
        ad_adam_config adam = adamw ? ad_adamw_defaults() : ad_adam_defaults();
        adam.lr = lr;
        return adamw ? ad_optim_adamw(&t->optim, t->model, &adam)
                     : ad_optim_adam(&t->optim, t->model, &adam);
    }
    }
    return AD_ERR_ARG;
}

static int setup(trainer *t, ad_rng *rng)
{
    const train_options *o = t->opts;
    int64_t shape[4] = {o->batch_size};
    for (int k = 0; k < t->ex->item_ndim; k++)
        shape[k + 1] = t->ex->item_shape[k];
    ad_status st = ad_tape_create(&t->tape);
    if (st == AD_OK)
        st = ad_tensor_create(&t->input, AD_F32, t->ex->item_ndim + 1, shape, false);
    if (st == AD_OK && !(t->labels = malloc((size_t)o->batch_size * sizeof *t->labels)))
        st = AD_ERR_NOMEM;
    if (st == AD_OK)
        st = make_optimizer(t);
    if (st == AD_OK)
        st = ad_batches_create(&t->train_batches, t->data.train_images.count, o->batch_size, true,
                               rng);
    if (st == AD_OK)
        st = ad_batches_create(&t->test_batches, t->data.test_images.count, o->batch_size, false,
                               NULL);
    if (st != AD_OK) {
        fprintf(stderr, "%s: setting up: %s\n", t->ex->name, ad_status_string(st));
        return TRAIN_EXIT_FAILURE;
    }
    if (o->csv_path) {
        if (!(t->csv = fopen(o->csv_path, "w"))) {
            fprintf(stderr, "%s: --csv %s: %s\n", t->ex->name, o->csv_path, strerror(errno));
            return TRAIN_EXIT_FAILURE;
        }
        fputs("epoch,batch,step,loss,train_acc,test_loss,test_acc\n", t->csv);
    }
    t->bar = isatty(STDERR_FILENO);
    t->plain = !isatty(STDOUT_FILENO) || !t->bar;
    t->steps_per_epoch = ad_batches_count(t->train_batches);
    if (o->limit_batches && o->limit_batches < t->steps_per_epoch)
        t->steps_per_epoch = o->limit_batches;
    t->total_steps = t->steps_per_epoch * o->epochs;
    return TRAIN_EXIT_OK;
}

static void teardown(trainer *t)
{
    if (t->csv && fclose(t->csv) != 0)
        fprintf(stderr, "%s: --csv %s: %s\n", t->ex->name, t->opts->csv_path, strerror(errno));
    ad_batches_free(t->train_batches);
    ad_batches_free(t->test_batches);
    ad_optim_free(t->optim);
    free(t->labels);
    /* The tape holds views of the input and the parameters: free it first. */
    ad_tape_free(t->tape);
    ad_tensor_free(t->input);
    fashion_data_free(&t->data);
}

/*
 * Records the forward pass and the loss of the m examples idx[0..m) on a reset tape; *logits
 * receives the model's output [m, CLASSES]. Returns the 0-d loss, or NULL with the tape's error.
 */
static ad_tensor *batch_loss(trainer *t, const ad_idx *images, const ad_idx *labels,
                             const int64_t *idx, int64_t m, ad_tensor **logits)
{
    ad_tape_reset(t->tape);
    if (ad_idx_gather_images(images, idx, m, t->input) != AD_OK ||
        ad_idx_gather_labels(labels, idx, m, t->labels) != AD_OK) {
        ad_tape_set_error(t->tape, AD_ERR_ARG, "gathering a batch of %" PRId64, m);
        return NULL;
    }
    /* x: [B, item...]. A short last batch uses its first m rows: a copy on the tape. */
    ad_tensor *x = ad_tape_use(t->tape, t->input);
    if (m < t->opts->batch_size)
        x = ad_slice(x, 0, 0, m, 1);
    if (t->ex->input_std > 0)
        x = ad_div_scalar(ad_sub_scalar(x, t->ex->input_mean), t->ex->input_std);
    *logits = ad_nn_forward(t->model, t->tape, x);
    return ad_cross_entropy(*logits, (size_t)m, t->labels);
}

/* The test loss and accuracy (over at most --limit-batches batches), in eval mode with the
 * tape's recording off; training mode and recording are restored after. */
static int evaluate(trainer *t, meter *result)
{
    *result = (meter){0};
    ad_nn_set_training(t->model, false);
    bool recording = ad_tape_set_grad_enabled(t->tape, false);
    const int64_t *idx;
    int64_t m, limit = t->opts->limit_batches, batch = 0;
    int code = TRAIN_EXIT_OK;
    ad_batches_reset(t->test_batches);
    while ((!limit || batch++ < limit) && ad_batches_next(t->test_batches, &idx, &m)) {
        ad_tensor *logits = NULL, *loss = batch_loss(t, &t->data.test_images, &t->data.test_labels,
                                                     idx, m, &logits);
        if (!loss) {
            code = tape_failure(t, "evaluation", ad_tape_status(t->tape));
            break;
        }
        meter_add(result, ad_value(loss), m, count_correct(logits, t->labels, m));
    }
    ad_tape_reset(t->tape);
    ad_tape_set_grad_enabled(t->tape, recording);
    ad_nn_set_training(t->model, true);
    return code;
}

/* The bar, in place on stderr: epoch, batch i/n, loss, running accuracy, examples/s, ETA. */
static void draw_bar(trainer *t, int epoch, int64_t batch, const meter *running, double elapsed,
                     int64_t epoch_examples)
{
    char bar[BAR_WIDTH + 1], eta[32];
    int filled = (int)(BAR_WIDTH * batch / t->steps_per_epoch);
    for (int k = 0; k < BAR_WIDTH; k++)
        bar[k] = k < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    double rate = elapsed > 0 ? (double)running->examples / elapsed : 0;
    double remaining = rate > 0 ? (double)(epoch_examples - running->examples) / rate : -1;
    fprintf(stderr,
            "\repoch %d/%d [%s] %" PRId64 "/%" PRId64
            "  loss %.4f  acc %5.2f%%  %.0f ex/s  ETA %s\033[K",
            epoch, t->opts->epochs, bar, batch, t->steps_per_epoch, meter_loss(running),
            100 * meter_accuracy(running), rate, format_duration(eta, sizeof eta, remaining));
    fflush(stderr);
    t->bar_drawn = true;
}

static void plain_line(trainer *t, int epoch, int64_t batch, const meter *running, double elapsed,
                       int64_t epoch_examples)
{
    char eta[32];
    double rate = elapsed > 0 ? (double)running->examples / elapsed : 0;
    double remaining = rate > 0 ? (double)(epoch_examples - running->examples) / rate : -1;
    clear_bar(t);
    printf("epoch %d/%d  batch %" PRId64 "/%" PRId64
           "  loss %.4f  acc %5.2f%%  %.0f ex/s  ETA %s\n",
           epoch, t->opts->epochs, batch, t->steps_per_epoch, meter_loss(running),
           100 * meter_accuracy(running), rate, format_duration(eta, sizeof eta, remaining));
    fflush(stdout);
}

/* One epoch of training; *running receives its loss and accuracy, *seconds its time. */
static int train_epoch(trainer *t, int epoch, meter *running, double *seconds)
{
    const train_options *o = t->opts;
    int64_t epoch_examples = t->steps_per_epoch * o->batch_size;
    if (epoch_examples > t->data.train_images.count)
        epoch_examples = t->data.train_images.count;
    double base_lr = learning_rate(o), start = now_seconds(), last_draw = 0;
    meter window = {0};
    *running = (meter){0};
    const int64_t *idx;
    int64_t m;
    for (int64_t batch = 1;
         batch <= t->steps_per_epoch && ad_batches_next(t->train_batches, &idx, &m); batch++) {
        if (o->schedule == TRAIN_LR_COSINE)
            ad_optim_set_lr(t->optim, ad_optim_lr_cosine(base_lr, 0, t->step, 0, t->total_steps));

        ad_tensor *logits = NULL;
        ad_tensor *loss =
            batch_loss(t, &t->data.train_images, &t->data.train_labels, idx, m, &logits);
        ad_optim_zero_grad(t->optim);
        ad_status st = ad_backward(loss, NULL); /* reports any failure of the forward too */
        if (st != AD_OK) {
            clear_bar(t);
            return tape_failure(t, "training step", st);
        }
        double value = ad_value(loss);
        if (!isfinite(value)) {
            clear_bar(t);
            fprintf(stderr, "%s: the loss is %g at step %" PRId64 "; try a smaller --lr\n",
                    t->ex->name, value, t->step + 1);
            return TRAIN_EXIT_FAILURE;
        }
        int64_t correct = count_correct(logits, t->labels, m);
        ad_optim_step(t->optim);
        t->step++;

        meter_add(running, value, m, correct);
        meter_add(&window, value, m, correct);
        double now = now_seconds(), elapsed = now - start;
        bool logged = batch % o->log_every == 0 || batch == t->steps_per_epoch;
        if (logged && t->csv) {
            fprintf(t->csv, "%d,%" PRId64 ",%" PRId64 ",%.6f,%.6f,,\n", epoch, batch, t->step,
                    meter_loss(&window), meter_accuracy(&window));
            window = (meter){0};
        }
        if (logged && t->plain)
            plain_line(t, epoch, batch, running, elapsed, epoch_examples);
        else if (t->bar && (now - last_draw >= REDRAW_SECONDS || batch == t->steps_per_epoch)) {
            draw_bar(t, epoch, batch, running, elapsed, epoch_examples);
            last_draw = now;
        }
    }
    *seconds = now_seconds() - start;
    return TRAIN_EXIT_OK;
}

static int train(trainer *t)
{
    const train_options *o = t->opts;
    double start = now_seconds();
    meter test = {0};
    for (int epoch = 1; epoch <= o->epochs; epoch++, ad_batches_reset(t->train_batches)) {
        meter running;
        double seconds;
        int code = train_epoch(t, epoch, &running, &seconds);
        if (code != TRAIN_EXIT_OK)
            return code;
        if (t->bar) {
            fprintf(stderr, "\repoch %d/%d: evaluating on the test set...\033[K", epoch, o->epochs);
            fflush(stderr);
            t->bar_drawn = true;
        }
        if ((code = evaluate(t, &test)) != TRAIN_EXIT_OK)
            return code;
        clear_bar(t);
        printf("epoch %d/%d  loss %.4f  train acc %5.2f%%  test loss %.4f  test acc %5.2f%%  "
               "%.1f s (%.0f ex/s)\n",
               epoch, o->epochs, meter_loss(&running), 100 * meter_accuracy(&running),
               meter_loss(&test), 100 * meter_accuracy(&test), seconds,
               (double)running.examples / seconds);
        fflush(stdout);
        if (t->csv) {
            fprintf(t->csv, "%d,%" PRId64 ",%" PRId64 ",,,%.6f,%.6f\n", epoch, t->steps_per_epoch,
                    t->step, meter_loss(&test), meter_accuracy(&test));
            fflush(t->csv);
        }
    }
    double accuracy = 100 * meter_accuracy(&test);
    printf("final test accuracy %.2f%% (%" PRId64 " test images) after %d epoch%s, "
           "%.1f s of training and evaluation\n",
           accuracy, test.examples, o->epochs, o->epochs == 1 ? "" : "s", now_seconds() - start);
    if (o->target > 0 && !(accuracy >= o->target)) {
        fprintf(stderr, "%s: test accuracy %.2f%% is below the target %.2f%%\n", t->ex->name,
                accuracy, o->target);
        return TRAIN_EXIT_FAILURE;
    }
    return TRAIN_EXIT_OK;
}

/* "model.safetensors" -> "model.optim.safetensors"; other names get ".optim.safetensors". */
static char *state_path(const char *path)
{
    static const char ext[] = ".safetensors";
    size_t len = strlen(path), ext_len = sizeof ext - 1;
    if (len > ext_len && !strcmp(path + len - ext_len, ext))
        len -= ext_len;
    char *s = malloc(len + sizeof ".optim.safetensors");
    if (s) {
        memcpy(s, path, len);
        strcpy(s + len, ".optim.safetensors");
    }
    return s;
}

/* The parameters by ad_nn_save (their PyTorch state_dict names), and the optimizer's state
 * in a second file, so the first loads into torch with load_state_dict as it is. */
static int save_checkpoint(trainer *t)
{
    char err[512];
    const char *path = t->opts->save_path;
    if (ad_nn_save(t->model, path, err, sizeof err) != AD_OK) {
        fprintf(stderr, "%s: --save: %s\n", t->ex->name, err);
        return TRAIN_EXIT_FAILURE;
    }
    size_t n = ad_optim_state(t->optim, NULL, 0);
    ad_nn_param *state = calloc(n, sizeof *state);
    const char **names = calloc(n, sizeof *names);
    ad_tensor **tensors = calloc(n, sizeof *tensors);
    char *spath = state_path(path);
    ad_status st = AD_ERR_NOMEM;
    snprintf(err, sizeof err, "out of memory");
    if (state && names && tensors && spath) {
        ad_optim_state(t->optim, state, n);
        for (size_t i = 0; i < n; i++) {
            names[i] = state[i].name;
            tensors[i] = state[i].tensor;
        }
        st = ad_safetensors_save(spath, n, names, tensors, err, sizeof err);
    }
    if (st == AD_OK)
        printf("saved the parameters to %s and the optimizer state to %s\n", path, spath);
    else
        fprintf(stderr, "%s: --save: optimizer state: %s\n", t->ex->name, err);
    free(state);
    free(names);
    free(tensors);
    free(spath);
    return st == AD_OK ? TRAIN_EXIT_OK : TRAIN_EXIT_FAILURE;
}

int train_run(const train_example *ex, const train_options *opts, ad_module *model, ad_rng *rng)
{
    trainer t = {.ex = ex, .opts = opts, .model = model};
    double start = now_seconds();
    int code = load_data(ex, opts, &t.data);
    if (code == TRAIN_EXIT_OK)
        code = setup(&t, rng);
    if (code == TRAIN_EXIT_OK) {
        char shape[64];
        int64_t item[4] = {opts->batch_size};
        memcpy(item + 1, ex->item_shape, (size_t)ex->item_ndim * sizeof *item);
        printf("%s: %s, %" PRId64 " parameters\n", ex->name, ex->summary, ad_nn_param_numel(model));
        printf("data: %s: %" PRId64 " training and %" PRId64 " test images, loaded in %.1f s\n",
               opts->data_dir, t.data.train_images.count, t.data.test_images.count,
               now_seconds() - start);
        printf("training: %d epoch%s of %" PRId64 " batches, input %s, %s lr %g%s%s, seed %" PRIu64
               ", %d thread%s\n",
               opts->epochs, opts->epochs == 1 ? "" : "s", t.steps_per_epoch,
               ad_shape_string(shape, sizeof shape, ex->item_ndim + 1, item),
               optimizer_name(opts->optimizer), learning_rate(opts),
               opts->optimizer == TRAIN_SGD && opts->momentum > 0 ? " with momentum" : "",
               opts->schedule == TRAIN_LR_COSINE ? " (cosine decay)" : "", opts->seed,
               ad_num_threads(), ad_num_threads() == 1 ? "" : "s");
        fflush(stdout);
        code = train(&t);
    }
    if (code == TRAIN_EXIT_OK && opts->save_path)
        code = save_checkpoint(&t);
    teardown(&t);
    return code;
}

int train_main(const train_example *ex, train_build_fn build, int argc, char **argv)
{
    train_options opts;
    int code = train_parse_options(ex, argc, argv, &opts);
    if (code != TRAIN_CONTINUE)
        return code;
    ad_rng rng;
    ad_rng_seed(&rng, opts.seed);
    ad_module *model;
    ad_status st = build(&model, &rng);
    if (st != AD_OK) {
        fprintf(stderr, "%s: building the model: %s\n", ex->name, ad_status_string(st));
        return TRAIN_EXIT_FAILURE;
    }
    code = train_run(ex, &opts, model, &rng);
    ad_nn_free(model);
    return code;
}
