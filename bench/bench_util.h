/*
 * Shared helpers for the benchmarks: a monotonic clock, medians, peak RSS,
 * command-line integers, and the output protocol.
 *
 * Every benchmark prints its figures to stdout as JSON lines,
 *     {"name": "mlp_step_ms", "value": 2.31, "unit": "ms", "threads": 1}
 * one per figure, and anything meant for people to stderr. bench/run reads
 * the lines and pairs each figure with its reference.
 */
#ifndef AD_BENCH_UTIL_H
#define AD_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>
#include <time.h>

/* Seconds on a monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (v is sorted in place); 0 for n = 0. */
static inline double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, bench_compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * Peak resident set size of this process so far, in MiB: VmHWM from
 * /proc/self/status, else getrusage's ru_maxrss. VmHWM comes first because
 * Linux carries ru_maxrss across execve: a process started from a larger
 * parent (bench/run is a Python process) would report the parent's size.
 */
static inline double bench_peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kib = -1;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0)
                kib = strtol(line + 6, NULL, 10);
        fclose(f);
        if (kib >= 0)
            return (double)kib / 1024.0;
    }
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return 0;
    return (double)usage.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* The integer after flag in argv ("--steps 50"), or fallback. */
static inline long bench_arg(int argc, char **argv, const char *flag, long fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return strtol(argv[i + 1], NULL, 10);
    return fallback;
}

/* One figure as a JSON line on stdout. name must need no escaping. */
static inline void bench_emit(const char *name, double value, const char *unit, int threads)
{
    printf("{\"name\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", \"threads\": %d}\n", name, value,
           unit, threads);
    fflush(stdout);
}

/* Keeps a computed value alive so the compiler cannot drop the work behind it. */
static volatile double bench_sink;

#endif
