/*
 * What the Fashion-MNIST examples share (examples/fashion_mlp.c and
 * examples/fashion_cnn.c): options, the data set, the training loop with its
 * progress display, the evaluation, the CSV log and the checkpoint. An
 * example describes itself in a train_example and gives a function that
 * builds its model:
 *
 *     int main(int argc, char **argv)
 *     {
 *         return train_main(&example, build_model, argc, argv);
 *     }
 *
 * train_main is train_parse_options, seeding, the build and train_run, which
 * an example can also call on their own.
 *
 * The training loop is the one in include/autodiff/layers.h: one persistent
 * float32 input tensor [B, item...] refilled by ad_idx_gather_images, and per
 * step ad_tape_reset, ad_nn_forward, ad_cross_entropy, ad_optim_zero_grad,
 * ad_backward, ad_optim_step. Every example of an epoch is used: the last,
 * shorter batch takes the first rows of the input tensor through ad_slice.
 *
 * Output. The progress bar (epoch, batch i/n, loss, running accuracy,
 * examples/s, ETA) is redrawn in place on stderr when stderr is a terminal.
 * When stdout is not a terminal (a log file, a test harness), or no bar is
 * drawn, a plain progress line goes to stdout every --log-every steps
 * instead. Each epoch ends with one summary line on stdout, after the test
 * set is evaluated in eval mode with recording off.
 *
 * The CSV (--csv PATH) has the header
 *     epoch,batch,step,loss,train_acc,test_loss,test_acc
 * and two kinds of row. Every --log-every steps: epoch, batch (1-based, in the
 * epoch), step (1-based, overall), and the mean loss and accuracy of the
 * steps since the previous such row (--log-every 1 gives the raw per-step
 * curve); the test columns are empty. After each epoch's evaluation: epoch,
 * batch (the batches run), step, empty loss and train_acc, and the test loss
 * and accuracy. Accuracies are fractions in [0, 1].
 */
#ifndef TRAIN_COMMON_H
#define TRAIN_COMMON_H

#include "autodiff/layers.h"

#include <stdbool.h>
#include <stdint.h>

/* Exit codes. train_parse_options returns TRAIN_CONTINUE when the program
 * should go on and train. */
enum {
    TRAIN_CONTINUE = -1,
    TRAIN_EXIT_OK = 0,
    TRAIN_EXIT_FAILURE = 1, /* training failed, or the --target accuracy was missed */
    TRAIN_EXIT_NO_DATA = 2, /* the data set is not installed */
    TRAIN_EXIT_USAGE = 64,  /* a bad option (EX_USAGE of sysexits.h) */
    TRAIN_EXIT_SKIP = 77    /* no data and --skip-if-missing: "skipped" to Meson and automake */
};

typedef enum { TRAIN_SGD, TRAIN_ADAM, TRAIN_ADAMW } train_optimizer;
typedef enum { TRAIN_LR_CONSTANT, TRAIN_LR_COSINE } train_schedule;

typedef struct train_options {
    int epochs;
    int64_t batch_size;
    double lr; /* 0: the optimizer's default below; reset to 0 when --optimizer changes it */
    train_optimizer optimizer;
    double momentum; /* SGD only */
    train_schedule schedule;
    uint64_t seed;
    int threads;           /* 0: leave the library's default */
    int64_t log_every;     /* steps between plain progress lines and CSV rows */
    int64_t limit_batches; /* at most this many training and test batches per epoch; 0: all */
    double target;         /* final test accuracy required, in percent; 0: none */
    bool skip_if_missing;
    const char *data_dir;
    const char *save_path; /* NULL: no checkpoint */
    const char *csv_path;  /* NULL: no CSV */
} train_options;

/* Default learning rates, used when opts.lr is 0. */
#define TRAIN_DEFAULT_LR_ADAM 1e-3
#define TRAIN_DEFAULT_LR_SGD 0.02

/* The mean and standard deviation of the Fashion-MNIST training pixels in [0, 1]. */
#define TRAIN_FASHION_MEAN 0.2860
#define TRAIN_FASHION_STD 0.3530

/* The Debian package's directory, the default for --data. */
#define TRAIN_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

/* What an example tells the shared code about itself. */
typedef struct train_example {
    const char *name;    /* the program's name, for messages: "fashion_mlp" */
    const char *summary; /* one line for --help and the start of a run */
    int item_ndim;       /* the shape of one input: {784} or {1, 28, 28} */
    int64_t item_shape[3];
    /* Inputs are standardised, (x - mean) / std, on the tape before the model sees them, when
     * std > 0; ad_idx_gather_images gives x in [0, 1]. */
    double input_mean, input_std;
    train_options defaults; /* the options before the command line */
} train_example;

/*
 * Reads the command line over ex->defaults into *opts. Returns TRAIN_CONTINUE
 * to go on; TRAIN_EXIT_OK after --help (usage on stdout); TRAIN_EXIT_USAGE
 * after a message and the usage on stderr. Sets the thread count when
 * --threads is given. opts's strings point into argv or static storage.
 */
int train_parse_options(const train_example *ex, int argc, char **argv, train_options *opts);

/*
 * Loads the data set, trains model with the options, evaluates it on the test
 * set after every epoch, and writes the CSV and the checkpoint if asked.
 * rng shuffles the batches (the model was initialised from it, so one seed
 * fixes the whole run). The model stays owned by the caller. Returns an exit
 * code: TRAIN_EXIT_OK, TRAIN_EXIT_FAILURE (with a message on stderr),
 * TRAIN_EXIT_NO_DATA (a message and the apt-get line) or TRAIN_EXIT_SKIP.
 */
int train_run(const train_example *ex, const train_options *opts, ad_module *model, ad_rng *rng);

/* Builds a model from rng (the seeded generator); owns it on AD_OK. */
typedef ad_status (*train_build_fn)(ad_module **model, ad_rng *rng);

/*
 * The whole program: parses the options, seeds an ad_rng with --seed, builds
 * the model with build, trains it with train_run and frees it. Returns the
 * exit code (TRAIN_EXIT_FAILURE with a message when the build fails).
 */
int train_main(const train_example *ex, train_build_fn build, int argc, char **argv);

#endif
