/* rusage.c: run a command and report its wall time and peak RSS, so the
 * benchmark needs no /usr/bin/time (bench/ingest.sh).
 *
 *   rusage [-o FILE] COMMAND [ARG ...]
 *
 * posix_spawnp + wait4 (posix_spawn shares no copied memory with the child, so
 * the child's peak RSS does not start at ours). Prints one line
 *   wall_s=W user_s=U sys_s=S maxrss_kib=K status=X
 * to FILE (or stderr), where K is ru_maxrss of the child (Linux: KiB) and X its
 * exit status (128 + signal when killed). Exits with the child's status, 127
 * when it could not be started. A benchmark tool, not part of tlsrptd. */
#define _DEFAULT_SOURCE /* wait4 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double tv_secs(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    const char *outpath = NULL;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-o") == 0) {
        outpath = argv[2];
        first = 3;
    }
    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    if (first >= argc) {
        fprintf(stderr, "usage: rusage [-o FILE] COMMAND [ARG ...]\n");
        return 64;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[first], NULL, NULL, argv + first, environ);
    if (e != 0) {
        fprintf(stderr, "rusage: %s: %s\n", argv[first], strerror(e));
        return 127;
    }
    int status = 0;
    struct rusage ru;
    pid_t w;
    do
        w = wait4(pid, &status, 0, &ru);
    while (w < 0 && errno == EINTR);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (w < 0) {
        fprintf(stderr, "rusage: wait4: %s\n", strerror(errno));
        return 127;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    FILE *out = stderr;
    if (outpath != NULL && (out = fopen(outpath, "w")) == NULL) {
        fprintf(stderr, "rusage: %s: %s\n", outpath, strerror(errno));
        out = stderr;
    }
    fprintf(out, "wall_s=%.3f user_s=%.3f sys_s=%.3f maxrss_kib=%ld status=%d\n", wall,
            tv_secs(&ru.ru_utime), tv_secs(&ru.ru_stime), ru.ru_maxrss, code);
    if (out != stderr)
        fclose(out);
    return code;
}
