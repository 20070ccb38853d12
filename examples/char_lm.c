/*
 * A character-level language model trained on English text: the fortune
 * cookies of Debian's `fortunes` package (about 2.5 MB under
 * /usr/share/games/fortunes; `apt-get install fortunes`).
 *
 *     char_lm --model lstm --minutes 10 --csv lstm.csv --save lstm.safetensors
 *     char_lm --model gpt --resume gpt.safetensors --sample 500 --prompt "The "
 *
 * Two models, chosen with --model: an LSTM (embedding, LSTM, linear head)
 * and a small GPT (token and learned position embeddings, pre-norm
 * transformer blocks with causal self-attention, a final layer norm and a
 * linear head). The last 10% of the text is held out; the example prints the
 * training loss and the validation bits per character, writes them to a CSV,
 * samples text from a prompt at a temperature, and saves or resumes the model
 * with its Adam state.
 */
#include <autodiff/sequence.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_DATA "/usr/share/games/fortunes"

typedef struct options {
    const char *model, *data, *csv, *save, *resume, *prompt;
    int64_t steps, batch, seq, hidden, layers, heads, eval_every, sample;
    double minutes, lr, temperature;
    uint64_t seed;
    int threads;
    bool skip_if_missing;
} options;

/* ---- Options ------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out, "usage: char_lm [options]\n"
                 "A character-level language model (LSTM or small GPT) on the fortunes text.\n\n"
                 "  --model NAME        lstm or gpt (default lstm)\n"
                 "  --data DIR          the text files (default " DEFAULT_DATA ";\n"
                 "                      apt-get install fortunes)\n"
                 "  --steps N           training steps (default 2000)\n"
                 "  --minutes X         stop training after X minutes (default: no limit)\n"
                 "  --batch N           sequences per step (default 32)\n"
                 "  --seq N             characters per sequence (default 64)\n"
                 "  --hidden N          LSTM hidden size / GPT width (default 256 / 128)\n"
                 "  --layers N          LSTM layers / transformer blocks (default 1 / 2)\n"
                 "  --heads N           GPT attention heads (default 4)\n"
                 "  --lr X              Adam learning rate (default 0.002 / 0.001)\n"
                 "  --eval-every N      steps between validation figures (default 100)\n"
                 "  --csv PATH          write step, seconds, train loss, validation bpc\n"
                 "  --save PATH         at the end, save the model (safetensors) and, in\n"
                 "                      PATH.optim.safetensors, the optimizer state\n"
                 "  --resume PATH       start from a --save'd model and optimizer state\n"
                 "  --sample N          characters to sample at the end (default 300)\n"
                 "  --prompt TEXT       the sample's start (default \"The \")\n"
                 "  --temperature X     sampling temperature (default 0.8)\n"
                 "  --seed N            seed of the weights, batches and sampling (default 1)\n"
                 "  --threads N         threads for matrix products (default 1)\n"
                 "  --skip-if-missing   exit 77 (a skipped test) when the text is missing\n"
                 "  --help, -h          print this and exit\n");
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
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

/* Parses one option's value; false for a bad one. */
static bool set_option(options *o, int id, const char *v)
{
    int64_t n = 0;
    switch (id) {
    case 'm':
        o->model = v;
        return !strcmp(v, "lstm") || !strcmp(v, "gpt");
    case 'd':
        o->data = v;
        return true;
    case 'c':
        o->csv = v;
        return true;
    case 'S':
        o->save = v;
        return true;
    case 'R':
        o->resume = v;
        return true;
    case 'p':
        o->prompt = v;
        return *v != 0;
    case 's':
        return parse_i64(v, 0, INT64_C(1) << 40, &o->steps);
    case 'b':
        return parse_i64(v, 1, 4096, &o->batch);
    case 'q':
        return parse_i64(v, 1, 4096, &o->seq);
    case 'H':
        return parse_i64(v, 1, 65536, &o->hidden);
    case 'L':
        return parse_i64(v, 1, 64, &o->layers);
    case 'a':
        return parse_i64(v, 1, 256, &o->heads);
    case 'e':
        return parse_i64(v, 1, INT64_C(1) << 40, &o->eval_every);
    case 'n':
        return parse_i64(v, 0, 1 << 20, &o->sample);
    case 'M':
        return parse_double(v, 0, 1e6, &o->minutes);
    case 'l':
        return parse_double(v, 1e-8, 10, &o->lr);
    case 't':
        return parse_double(v, 1e-3, 100, &o->temperature);
    case 'r':
        if (!parse_i64(v, 0, INT64_MAX, &n))
            return false;
        o->seed = (uint64_t)n;
        return true;
    case 'T':
        if (!parse_i64(v, 1, 256, &n))
            return false;
        o->threads = (int)n;
        return true;
    }
    return false;
}

/* Returns 0 to run, -1 after --help, or 64 (EX_USAGE) for a bad command line. */
static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longs[] = {{"model", required_argument, 0, 'm'},
                                          {"data", required_argument, 0, 'd'},
                                          {"csv", required_argument, 0, 'c'},
                                          {"save", required_argument, 0, 'S'},
                                          {"resume", required_argument, 0, 'R'},
                                          {"prompt", required_argument, 0, 'p'},
                                          {"steps", required_argument, 0, 's'},
                                          {"batch", required_argument, 0, 'b'},
                                          {"seq", required_argument, 0, 'q'},
                                          {"hidden", required_argument, 0, 'H'},
                                          {"layers", required_argument, 0, 'L'},
                                          {"heads", required_argument, 0, 'a'},
                                          {"eval-every", required_argument, 0, 'e'},
                                          {"sample", required_argument, 0, 'n'},
                                          {"minutes", required_argument, 0, 'M'},
                                          {"lr", required_argument, 0, 'l'},
                                          {"temperature", required_argument, 0, 't'},
                                          {"seed", required_argument, 0, 'r'},
                                          {"threads", required_argument, 0, 'T'},
                                          {"skip-if-missing", no_argument, 0, 'x'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    *o = (options){.model = "lstm",
                   .data = DEFAULT_DATA,
                   .prompt = "The ",
                   .steps = 2000,
                   .batch = 32,
                   .seq = 64,
                   .heads = 4,
                   .eval_every = 100,
                   .sample = 300,
                   .temperature = 0.8,
                   .seed = 1,
                   .threads = 1};
    int id, index;
    opterr = 0;
    while ((id = getopt_long(argc, argv, "h", longs, &index)) != -1) {
        if (id == 'h') {
            usage(stdout);
            return -1;
        }
        if (id == 'x') {
            o->skip_if_missing = true;
            continue;
        }
        if (id == '?' || id == ':' || !set_option(o, id, optarg)) {
            fprintf(stderr, "char_lm: bad option or value: %s\n", argv[optind - 1]);
            usage(stderr);
            return 64;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "char_lm: unexpected argument: %s\n", argv[optind]);
        return 64;
    }
    bool gpt = !strcmp(o->model, "gpt");
    o->hidden = o->hidden ? o->hidden : gpt ? 128 : 256;
    o->layers = o->layers ? o->layers : gpt ? 2 : 1;
    o->lr = o->lr > 0 ? o->lr : gpt ? 1e-3 : 2e-3;
    if (gpt && o->hidden % o->heads) {
        fprintf(stderr, "char_lm: --hidden %" PRId64 " must be a multiple of --heads %" PRId64 "\n",
                o->hidden, o->heads);
        return 64;
    }
    return 0;
}

/* ---- Text ------------------------------------------------------------------------------------ */

typedef struct text {
    unsigned char *ids; /* each character's index in vocab */
    int64_t n, n_train;
    char vocab[256];
    int n_vocab;
} text;

/* Appends file `path`'s printable ASCII and newlines to *buf (tabs as
 * spaces; the "%" lines between fortunes as blank lines). */
static bool append_file(const char *path, char **buf, size_t *len, size_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    int c, prev = '\n';
    while ((c = fgetc(f)) != EOF) {
        if (c == '\t')
            c = ' ';
        if (c == '%' && prev == '\n')
            continue; /* the separator line: its newline stays, a blank line */
        if (c != '\n' && (c < 32 || c > 126))
            continue;
        if (*len + 1 >= *cap) {
            size_t new_cap = *cap ? 2 * *cap : 1 << 20;
            char *grown = realloc(*buf, new_cap);
            if (!grown) {
                fclose(f);
                return false;
            }
            *buf = grown;
            *cap = new_cap;
        }
        (*buf)[(*len)++] = (char)c;
        prev = c;
    }
    fclose(f);
    return true;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every text file of dir (names without a dot: not the .dat indexes
 * or .u8 links), in name order. Returns the bytes, or NULL. */
static char *read_dir(const char *dir, size_t *len)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *names[1024], *buf = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (e->d_name[0] != '.' && !strchr(e->d_name, '.'))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], compare_names);
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (names[i] && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            append_file(path, &buf, len, &cap);
        free(names[i]);
    }
    return buf;
}

/* Loads the text and its vocabulary; 90% to train on, the rest held out. */
static bool load_text(const char *dir, text *t)
{
    size_t len = 0;
    char *raw = read_dir(dir, &len);
    if (!raw || len < 10000) {
        free(raw);
        return false;
    }
    bool seen[256] = {false};
    for (size_t i = 0; i < len; i++)
        seen[(unsigned char)raw[i]] = true;
    int index[256];
    t->n_vocab = 0;
    for (int c = 0; c < 256; c++)
        if (seen[c]) {
            index[c] = t->n_vocab;
            t->vocab[t->n_vocab++] = (char)c;
        }
    t->ids = malloc(len);
    if (!t->ids) {
        free(raw);
        return false;
    }
    for (size_t i = 0; i < len; i++)
        t->ids[i] = (unsigned char)index[(unsigned char)raw[i]];
    free(raw);
    t->n = (int64_t)len;
    t->n_train = t->n * 9 / 10;
    return true;
}

/* ---- Models -------------------------------------------------------------------------------- */

typedef struct model {
    ad_module *root; /* a module dict: its children below, for names and saving */
    ad_module *embed, *pos, *rnn, *norm, *head, *blocks[64];
    bool gpt;
    int64_t layers, seq;
} model;

static ad_status add(ad_module *root, const char *name, ad_module **slot, ad_status st)
{
    if (st != AD_OK)
        return st;
    st = ad_module_add_child(root, name, *slot);
    if (st != AD_OK) {
        ad_nn_free(*slot);
        *slot = NULL;
    }
    return st;
}

static ad_status build_model(const options *o, int n_vocab, model *m, ad_rng *rng)
{
    *m = (model){.gpt = !strcmp(o->model, "gpt"), .layers = o->layers, .seq = o->seq};
    ad_status st = ad_nn_module_dict(&m->root, 0, NULL, NULL);
    st = add(m->root, "embed", &m->embed,
             st ? st : ad_nn_embedding(&m->embed, n_vocab, o->hidden, AD_F32, rng));
    if (!m->gpt) {
        ad_rnn_config c = ad_rnn_defaults(AD_LSTM, o->hidden, o->hidden);
        c.num_layers = (int)o->layers;
        c.batch_first = true;
        st = add(m->root, "rnn", &m->rnn, st ? st : ad_nn_rnn(&m->rnn, &c, AD_F32, rng));
    } else {
        st = add(m->root, "pos", &m->pos,
                 st ? st
                    : ad_nn_positional_embedding(&m->pos, o->seq, o->hidden, true, AD_F32, rng));
        ad_transformer_config c = ad_transformer_defaults(o->hidden, o->heads);
        c.dim_feedforward = 4 * o->hidden;
        c.dropout = 0;
        c.activation = AD_ACT_GELU;
        c.batch_first = true;
        c.norm_first = true;
        for (int64_t l = 0; l < o->layers; l++) {
            char name[32];
            snprintf(name, sizeof name, "block%" PRId64, l);
            st = add(m->root, name, &m->blocks[l],
                     st ? st : ad_nn_transformer_encoder_layer(&m->blocks[l], &c, AD_F32, rng));
        }
        st = add(m->root, "norm", &m->norm,
                 st ? st : ad_nn_layer_norm(&m->norm, o->hidden, AD_NORM_EPS, AD_F32));
    }
    return add(m->root, "head", &m->head,
               st ? st : ad_nn_linear(&m->head, o->hidden, n_vocab, true, AD_F32, rng));
}

/* Logits [B, T, V] for ids [B, T] (int64). The LSTM also takes and returns
 * its states (h, c may be NULL for zeros; hn, cn may be NULL). */
static ad_tensor *forward(const model *m, ad_tape *tape, ad_tensor *ids, ad_tensor *h, ad_tensor *c,
                          ad_tensor **hn, ad_tensor **cn)
{
    ad_tensor *x = ad_nn_forward(m->embed, tape, ids);
    if (!m->gpt) {
        ad_tensor *out[3] = {NULL};
        if (ad_nn_forward_n(m->rnn, tape, 3, (ad_tensor *[]){x, h, c}, 3, out) != AD_OK)
            return NULL;
        if (hn)
            *hn = out[1];
        if (cn)
            *cn = out[2];
        return ad_nn_forward(m->head, tape, out[0]);
    }
    int64_t t = ad_tensor_dim(ids, 1);
    x = ad_nn_forward(m->pos, tape, x);
    ad_tensor *mask = ad_causal_mask(tape, t, t);
    for (int64_t l = 0; l < m->layers && x; l++) {
        ad_tensor *y = NULL;
        if (ad_nn_forward_n(m->blocks[l], tape, 2, (ad_tensor *[]){x, mask}, 1, &y) != AD_OK)
            return NULL;
        x = y;
    }
    return ad_nn_forward(m->head, tape, ad_nn_forward(m->norm, tape, x));
}

/* Mean cross-entropy (nats) of next-character prediction on windows starting
 * at starts[0..b): ids [b, T] -> targets shifted by one. */
static ad_tensor *window_loss(const model *m, ad_tape *tape, const text *tx, const int64_t *starts,
                              int64_t b, int64_t t)
{
    ad_tensor *in = ad_tape_tensor(tape, AD_I64, 2, (int64_t[]){b, t}, NULL);
    int64_t *targets = malloc((size_t)(b * t) * sizeof *targets);
    if (!in || !targets) {
        free(targets);
        return NULL;
    }
    int64_t *ids = ad_tensor_data(in);
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < t; j++) {
            ids[i * t + j] = tx->ids[starts[i] + j];
            targets[i * t + j] = tx->ids[starts[i] + j + 1];
        }
    ad_tensor *logits = forward(m, tape, in, NULL, NULL, NULL, NULL);
    ad_tensor *flat = ad_reshape(logits, 2, (int64_t[]){b * t, tx->n_vocab});
    ad_tensor *loss = ad_cross_entropy(flat, (size_t)(b * t), targets);
    free(targets);
    return loss;
}

/* Validation bits per character over 16 batches spread across the held-out text. */
static double validation_bpc(model *m, ad_tape *tape, const text *tx, const options *o)
{
    ad_nn_set_training(m->root, false);
    int64_t span = tx->n - tx->n_train - o->seq - 1, batches = 16;
    double sum = 0;
    int64_t *starts = malloc((size_t)o->batch * sizeof *starts);
    for (int64_t k = 0; starts && k < batches; k++) {
        for (int64_t i = 0; i < o->batch; i++)
            starts[i] = tx->n_train + (k * o->batch + i) * span / (batches * o->batch);
        ad_tape_reset(tape);
        sum += ad_value(window_loss(m, tape, tx, starts, o->batch, o->seq));
    }
    free(starts);
    ad_nn_set_training(m->root, true);
    return sum / (double)batches / log(2.0);
}

/* ---- Sampling ---------------------------------------------------------------------------- */

/* An index drawn from softmax(logits / temperature) (v floats). */
static int draw(const float *logits, int v, double temperature, ad_rng *rng)
{
    double top = -INFINITY, total = 0, p[256];
    for (int i = 0; i < v; i++)
        top = fmax(top, logits[i] / temperature);
    for (int i = 0; i < v; i++)
        total += p[i] = exp(logits[i] / temperature - top);
    double u = ad_rng_uniform(rng) * total;
    for (int i = 0; i < v; i++)
        if ((u -= p[i]) <= 0)
            return i;
    return v - 1;
}

/* Prints the prompt and n sampled characters. The LSTM carries its states
 * from step to step in persistent tensors; the GPT rereads its last
 * --seq characters each step. */
static void sample(const model *m, const text *tx, const options *o, ad_rng *rng)
{
    int64_t cap = (int64_t)strlen(o->prompt) + o->sample;
    int64_t *ids = malloc((size_t)cap * sizeof *ids), len = 0;
    ad_tape *tape = NULL;
    if (!ids || ad_tape_create(&tape) != AD_OK) {
        free(ids);
        return;
    }
    for (const char *p = o->prompt; *p; p++) {
        const char *at = memchr(tx->vocab, *p, (size_t)tx->n_vocab);
        ids[len++] = at ? at - tx->vocab : 0;
    }
    ad_nn_set_training(m->root, false);
    ad_tensor *state[2] = {NULL, NULL};
    printf("--- sample (temperature %g) ---\n%s", o->temperature, o->prompt);
    int64_t fed = 0; /* LSTM: characters already through the states */
    while (len < cap) {
        ad_tape_reset(tape);
        int64_t from = m->gpt ? (len > o->seq ? len - o->seq : 0) : fed, t = len - from;
        ad_tensor *in = ad_tape_tensor(tape, AD_I64, 2, (int64_t[]){1, t}, ids + from);
        ad_tensor *hn = NULL, *cn = NULL;
        ad_tensor *logits = forward(m, tape, in, state[0], state[1], &hn, &cn);
        if (!logits)
            break;
        if (!m->gpt) {
            for (int k = 0; k < 2; k++) {
                ad_tensor *s = k ? cn : hn;
                if (!state[k])
                    ad_tensor_create(&state[k], AD_F32, 3, ad_tensor_shape(s), false);
                ad_tensor_assign(state[k], s);
            }
            fed = len;
        }
        const float *last = (const float *)ad_tensor_data(logits) + (t - 1) * tx->n_vocab;
        ids[len++] = draw(last, tx->n_vocab, o->temperature, rng);
        putchar(tx->vocab[ids[len - 1]]);
    }
    printf("\n--- end of sample ---\n");
    ad_tensor_free(state[0]);
    ad_tensor_free(state[1]);
    ad_tape_free(tape);
    free(ids);
    ad_nn_set_training(m->root, true);
}

/* ---- Checkpoints ---------------------------------------------------------------------------- */

/* "m.safetensors" -> "m.optim.safetensors"; other names get ".optim.safetensors". */
static void state_path(const char *path, char *out, size_t size)
{
    size_t len = strlen(path), ext = strlen(".safetensors");
    if (len > ext && !strcmp(path + len - ext, ".safetensors"))
        len -= ext;
    snprintf(out, size, "%.*s.optim.safetensors", (int)len, path);
}

/* The optimizer's tensors plus the vocabulary ("meta.vocab", float64 codes),
 * so that --resume can check it trains on the same characters. */
static size_t state_tensors(ad_optim *opt, ad_tensor *vocab, const char **names,
                            ad_tensor **tensors, size_t max)
{
    ad_nn_param p[512];
    size_t n = ad_optim_state(opt, p, 512);
    if (n + 1 > max || n > 512)
        return 0;
    for (size_t i = 0; i < n; i++) {
        names[i] = p[i].name;
        tensors[i] = p[i].tensor;
    }
    names[n] = "meta.vocab";
    tensors[n] = vocab;
    return n + 1;
}

static bool checkpoint(const char *path, bool save, model *m, ad_optim *opt, ad_tensor *vocab)
{
    char err[512], second[4096];
    const char *names[513];
    ad_tensor *tensors[513];
    size_t n = state_tensors(opt, vocab, names, tensors, 513);
    state_path(path, second, sizeof second);
    ad_status st = save ? ad_nn_save(m->root, path, err, sizeof err)
                        : ad_nn_load(m->root, path, err, sizeof err);
    if (st == AD_OK)
        st = save ? ad_safetensors_save(second, n, names, tensors, err, sizeof err)
                  : ad_safetensors_load(second, n, names, tensors, err, sizeof err);
    if (st != AD_OK || !n)
        fprintf(stderr, "char_lm: %s %s: %s\n", save ? "--save" : "--resume", path,
                n ? err : "too many optimizer tensors");
    return st == AD_OK && n;
}

/* The optimizer's step count (its "state.step"). */
static int64_t optimizer_steps(ad_optim *opt)
{
    ad_nn_param p[512];
    size_t n = ad_optim_state(opt, p, 512);
    for (size_t i = 0; i < n && i < 512; i++)
        if (!strcmp(p[i].name, "state.step"))
            return (int64_t)ad_value(p[i].tensor);
    return 0;
}

/* ---- Training -------------------------------------------------------------------------------- */

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

typedef struct run {
    const options *o;
    const text *tx;
    model *m;
    ad_optim *opt;
    ad_tape *tape;
    ad_rng *rng;
    FILE *csv;
    ad_tensor *params[512];
    size_t n_params;
} run;

/* One step on a random batch; returns its loss (NaN after an error). */
static double train_step(run *r, int64_t step)
{
    const options *o = r->o;
    int64_t starts[4096];
    for (int64_t i = 0; i < o->batch; i++)
        starts[i] = (int64_t)ad_rng_below(r->rng, (uint64_t)(r->tx->n_train - o->seq - 1));
    ad_tape_reset(r->tape);
    ad_tensor *loss = window_loss(r->m, r->tape, r->tx, starts, o->batch, o->seq);
    ad_optim_zero_grad(r->opt);
    if (ad_backward(loss, NULL) != AD_OK) {
        fprintf(stderr, "char_lm: %s\n", ad_tape_message(r->tape));
        return NAN;
    }
    ad_optim_clip_grad_norm(r->n_params, r->params, 1.0);
    ad_optim_set_lr(r->opt, ad_optim_lr_cosine(o->lr, o->lr / 10, step, 100, o->steps));
    ad_optim_step(r->opt);
    return ad_value(loss);
}

/* Trains from the optimizer's step to --steps or --minutes; returns the last
 * validation bits per character (NaN after an error). */
static double train(run *r)
{
    const options *o = r->o;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double window = 0, bpc = NAN;
    int64_t in_window = 0, step = optimizer_steps(r->opt), first = step;
    for (; step < o->steps; step++) {
        if (o->minutes > 0 && seconds_since(&t0) > 60 * o->minutes)
            break;
        double loss = train_step(r, step);
        if (isnan(loss))
            return NAN;
        window += loss;
        in_window++;
        if ((step + 1) % o->eval_every == 0 || step + 1 == o->steps) {
            bpc = validation_bpc(r->m, r->tape, r->tx, o);
            double s = seconds_since(&t0);
            printf("step %6" PRId64 "  %7.1f s  train loss %.4f  validation %.4f bits/char\n",
                   step + 1, s, window / (double)in_window, bpc);
            fflush(stdout);
            if (r->csv)
                fprintf(r->csv, "%" PRId64 ",%.3f,%.6f,%.6f\n", step + 1, s,
                        window / (double)in_window, bpc);
            window = 0;
            in_window = 0;
        }
    }
    if (isnan(bpc))
        bpc = validation_bpc(r->m, r->tape, r->tx, o);
    printf("trained %" PRId64 " steps (%" PRId64 " to %" PRId64 ") in %.1f s: validation %.4f "
           "bits/char\n",
           step - first, first, step, seconds_since(&t0), bpc);
    return bpc;
}

/* The vocabulary as a persistent float64 tensor of character codes. */
static ad_tensor *vocab_tensor(const text *tx)
{
    ad_tensor *v = NULL;
    if (ad_tensor_create(&v, AD_F64, 1, (int64_t[]){tx->n_vocab}, false) != AD_OK)
        return NULL;
    for (int i = 0; i < tx->n_vocab; i++)
        ad_tensor_set(v, i, (unsigned char)tx->vocab[i]);
    return v;
}

static bool same_vocab(const ad_tensor *saved, const text *tx)
{
    for (int i = 0; i < tx->n_vocab; i++)
        if (ad_tensor_get(saved, i) != (unsigned char)tx->vocab[i])
            return false;
    return true;
}

/* Sets up the model, optimizer and CSV, trains, samples and saves. */
static int run_all(const options *o, const text *tx)
{
    ad_rng rng;
    ad_rng_seed(&rng, o->seed);
    model m;
    ad_optim *opt = NULL;
    ad_adam_config adam = ad_adam_defaults();
    adam.lr = o->lr;
    ad_tensor *vocab = vocab_tensor(tx);
    run r = {.o = o, .tx = tx, .m = &m, .rng = &rng};
    int status = 1;
    if (build_model(o, tx->n_vocab, &m, &rng) != AD_OK || !vocab ||
        ad_optim_adam(&opt, m.root, &adam) != AD_OK || ad_tape_create(&r.tape) != AD_OK) {
        fprintf(stderr, "char_lm: out of memory building the model\n");
        goto done;
    }
    r.opt = opt;
    ad_nn_param p[512];
    r.n_params = ad_nn_params(m.root, p, 512);
    for (size_t i = 0; i < r.n_params && i < 512; i++)
        r.params[i] = p[i].tensor;
    printf("%s: %" PRId64 " parameters, %d characters, %" PRId64 " of text (%" PRId64
           " to train on)\n",
           o->model, ad_nn_param_numel(m.root), tx->n_vocab, tx->n, tx->n_train);
    if (o->resume) {
        if (!checkpoint(o->resume, false, &m, opt, vocab))
            goto done;
        if (!same_vocab(vocab, tx)) {
            fprintf(stderr, "char_lm: --resume %s was trained on other text\n", o->resume);
            goto done;
        }
        printf("resumed %s at step %" PRId64 "\n", o->resume, optimizer_steps(opt));
    }
    if (o->csv && !(r.csv = fopen(o->csv, o->resume ? "a" : "w"))) {
        fprintf(stderr, "char_lm: --csv %s: %s\n", o->csv, strerror(errno));
        goto done;
    }
    if (r.csv && !o->resume)
        fprintf(r.csv, "step,seconds,train_loss,val_bpc\n");
    double bpc = train(&r);
    if (isnan(bpc))
        goto done;
    if (o->sample)
        sample(&m, tx, o, &rng);
    status = o->save && !checkpoint(o->save, true, &m, opt, vocab) ? 1 : 0;
done:
    if (r.csv)
        fclose(r.csv);
    ad_tape_free(r.tape);
    ad_optim_free(opt);
    ad_nn_free(m.root);
    ad_tensor_free(vocab);
    return status;
}

int main(int argc, char **argv)
{
    options o;
    int st = parse_options(argc, argv, &o);
    if (st)
        return st < 0 ? 0 : st;
    ad_set_num_threads(o.threads);
    text tx = {0};
    if (!load_text(o.data, &tx)) {
        fprintf(stderr, "char_lm: no text under %s; install it with\n", o.data);
        printf("apt-get install fortunes\n");
        return o.skip_if_missing ? 77 : 2;
    }
    if (tx.n - tx.n_train < o.seq + 2 || tx.n_train < o.seq + 2) {
        fprintf(stderr, "char_lm: --seq %" PRId64 " is longer than the text allows\n", o.seq);
        free(tx.ids);
        return 64;
    }
    int status = run_all(&o, &tx);
    free(tx.ids);
    return status;
}
