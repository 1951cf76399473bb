/* thread_prio.h: a thread that prepares work for a single writer steps back
 * in the scheduler, so that on a busy machine the writer runs first.
 *
 * Storing is serial: one writer thread takes what the preparing threads
 * (HTTP uploads being inflated and parsed, ingest's readers) made ready and
 * commits it. When every core is busy the kernel shares them equally, and the
 * writer, which everything waits for, spent a third of its time runnable but
 * not running. Preparing threads at a lower priority (a higher nice value)
 * still get every cycle the writer leaves, and the writer no longer queues
 * behind them. Linux applies setpriority() to a single thread when given its
 * thread id; elsewhere this does nothing. */
#ifndef TLSRPTD_THREAD_PRIO_H
#define TLSRPTD_THREAD_PRIO_H

/* How much nicer than the process a preparing thread runs. */
#define THREAD_PRIO_PREPARE_NICE 10

/* Lower the calling thread's priority by THREAD_PRIO_PREPARE_NICE (at most to
 * nice 19). Best effort: a failure leaves the thread as it was. */
void thread_prio_prepare(void);

#endif
