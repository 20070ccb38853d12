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
 * code either way, and elementwise loops have no reductions).
 *
 * At exit the workers are stopped and joined (stop_workers), so a program
 * ends with no thread of ours running and nothing of ours allocated, as
 * valgrind checks. A forked child has none of its parent's workers: it
 * forgets them and starts its own on its first parallel loop. */
#include "core.h"

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
    int started;         /* workers running (joinable: stop_workers joins them) */
    bool stopped;        /* by stop_workers: no more workers, loops run in the caller */
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
        while (pool.generation == seen && !pool.stopped)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stopped)
            break; /* set only between jobs: no part is left undone */
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
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* fork() while workers wait: the child gets only the thread that forked.
 * Both locks are held across the fork (prepare waits for a loop running in
 * another thread to finish), so the child inherits them from its own thread,
 * free and with no job half done. The child's condition variables still
 * count the parent's workers as waiters, and a broadcast would wait for
 * them forever: they are made anew. The job count starts again at 0, where
 * a new worker starts (seen = 0): else the child's first worker would take
 * the parent's last job for a new one and run it on memory long gone. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&pool.owner);
    pthread_mutex_lock(&pool.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.owner);
}

static void fork_child(void)
{
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
    pool.generation = 0;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.owner);
}

static void register_fork_handlers(void)
{
    /* If this fails, a child that forks while workers wait and then uses the
     * pool may hang; nothing else changes. */
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* At exit (or when the shared library is unloaded): stop the workers and
 * join them. A destructor, not atexit, so that it runs after the program's
 * own atexit handlers, which may still use the library; loops after it run
 * in the caller. It never waits on a loop: if one is running in another
 * thread, its workers are left to the end of the process. Does nothing when
 * the pool never started. */
__attribute__((destructor)) static void stop_workers(void)
{
    if (pthread_mutex_trylock(&pool.owner) != 0)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stopped = true;
    int started = pool.started;
    pool.started = 0;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < started; i++)
        pthread_join(pool.thread[i], NULL);
    pthread_mutex_unlock(&pool.owner);
}

/* Starts workers up to wanted - 1; called with pool.owner held. Returns how
 * many parts a job may use (1 if no worker could start). */
static int ensure_workers(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_handlers);
    pthread_mutex_lock(&pool.lock);
    int wanted = pool.stopped ? 1 : atomic_load(&pool.wanted);
    while (pool.started < wanted - 1) {
        if (pthread_create(&pool.thread[pool.started], NULL, worker,
                           (void *)(intptr_t)(pool.started + 1)) != 0)
            break; /* no thread: run with the workers we have */
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
