/* thread_prio.c: preparing threads step back for the writer (see
 * thread_prio.h). */
#define _GNU_SOURCE /* gettid */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "tlsrptd/log.h"
#include "tlsrptd/thread_prio.h"

void thread_prio_prepare(void)
{
#ifdef __linux__
    id_t self = (id_t)gettid();
    errno = 0;
    int now = getpriority(PRIO_PROCESS, self); /* -1 is a valid answer: errno tells */
    if (now == -1 && errno != 0)
        return;
    int want = now + THREAD_PRIO_PREPARE_NICE;
    if (want > 19)
        want = 19;
    if (want != now && setpriority(PRIO_PROCESS, self, want) != 0)
        tr_debug("preparing thread stays at nice %d: %s", now, strerror(errno));
#endif
}
