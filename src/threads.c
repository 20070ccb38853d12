/* Threads: the process-wide thread count (ad_set_num_threads), handed to
 * BLAS for matrix products, and a small pool of our own for large
 * elementwise loops (ad__parallel_for).
 *
 * The pool's workers start on the first parallel loop after the count is
 * raised and then wait on a condition variable; a loop wakes them, runs its
 * first part in the calling thread and waits for the rest. Nothing is
 * allocated per loop, so steady-state training stays allocation-free. Two
 * user threads recording on two tapes may both reach a parallel loop: the
 * pool serves one at a time and the other runs its loop alone, so results
 * never depend on who got the pool (each element is computed by the same
 * code either way, and elementwise loops have no reductions). */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>

#ifdef AD_HAVE_OPENBLAS
/* OpenBLAS's own controls; declared here as cblas.h of other BLASes lacks them. */
void openblas_set_num_threads(int n);
#endif

enum { MAX_THREADS = 64 };

static struct {
    pthread_mutex_t lock;  /* guards everything below */
    pthread_cond_t wake;   /* a new job (generation changed) */
    pthread_cond_t done;   /* pending reached 0 */
    pthread_mutex_t owner; /* held by the one caller using the pool */
    pthread_t thread[MAX_THREADS];
    int started;         /* workers running */
    _Atomic int wanted;  /* the thread count, caller included (read unlocked) */
    uint64_t generation; /* job number */
    ad__range_fn fn;
    void *ctx;
    int64_t n;
    int parts;   /* the job's parts: part 0 is the caller's */
    int pending; /* worker parts not finished */
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .wanted = 1,
};

/* Part k of n split into parts pieces, boundaries on multiples of 16
 * elements so that no two threads write one cache line. */
static void part_range(int64_t n, int parts, int k, int64_t *begin, int64_t *end)
{
    int64_t step = ((n + parts - 1) / parts + 15) & ~(int64_t)15;
    *begin = step * k < n ? step * k : n;
    *end = step * (k + 1) < n ? step * (k + 1) : n;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg; /* 1.. : part id */
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        if (id >= pool.parts)
            continue; /* this job uses fewer threads */
        ad__range_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int64_t begin, end;
        part_range(pool.n, pool.parts, id, &begin, &end);
        pthread_mutex_unlock(&pool.lock);
        if (begin < end)
            fn(ctx, begin, end);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* Starts workers up to wanted - 1; called with pool.owner held. Returns how
 * many parts a job may use (1 if no worker could start). */
static int ensure_workers(void)
{
    pthread_mutex_lock(&pool.lock);
    int wanted = atomic_load(&pool.wanted);
    while (pool.started < wanted - 1) {
        if (pthread_create(&pool.thread[pool.started], NULL, worker,
                           (void *)(intptr_t)(pool.started + 1)) != 0)
            break; /* no thread: run with the workers we have */
        pthread_detach(pool.thread[pool.started]);
        pool.started++;
    }
    int parts = pool.started + 1 < wanted ? pool.started + 1 : wanted;
    pthread_mutex_unlock(&pool.lock);
    return parts;
}

void ad__parallel_for(int64_t n, int64_t grain, ad__range_fn fn, void *ctx)
{
    if (n < grain || atomic_load_explicit(&pool.wanted, memory_order_relaxed) < 2 ||
        pthread_mutex_trylock(&pool.owner) != 0) {
        fn(ctx, 0, n);
        return;
    }
    int parts = ensure_workers();
    int64_t max_parts = n / (grain / 2); /* each part at least half a grain */
    if (parts > max_parts)
        parts = (int)max_parts;
    if (parts < 2) {
        pthread_mutex_unlock(&pool.owner);
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.parts = parts;
    pool.pending = parts - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    int64_t begin, end;
    part_range(n, parts, 0, &begin, &end);
    fn(ctx, begin, end);

    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.owner);
}

void ad_set_num_threads(int n)
{
    n = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    atomic_store(&pool.wanted, n);
#ifdef AD_HAVE_OPENBLAS
    openblas_set_num_threads(n);
#endif
}

int ad_num_threads(void)
{
    return atomic_load(&pool.wanted);
}
