/*
 * A worker's thread pool for rare CPU-heavy jobs (argon2id). Jobs are queued under a
 * mutex (never on the metered hot path) and completions come back to the event loop
 * through h2o's multithread queue, which wakes the loop.
 */
#include "server/offload.h"

#include <h2o/multithread.h>
#include <pthread.h>
#include <stdlib.h>

/* Beyond this many waiting jobs a login gets 503 rather than queueing for seconds:
 * at ~30 ms per argon2id check and 2 threads, 64 jobs is about a second of work. */
#define TG_OFFLOAD_MAX_QUEUED 64

typedef struct st_tg_offload_job_t {
    h2o_multithread_message_t message; /* first: the receiver gets this pointer back */
    struct st_tg_offload_job_t *next;
    tg_offload_work_fn work;
    tg_offload_done_fn done;
    void *data;
} tg_offload_job_t;

struct st_tg_offload_t {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    tg_offload_job_t *head, *tail;
    size_t queued;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
};

static void *thread_main(void *arg)
{
    tg_offload_t *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->mutex);
        while (pool->head == NULL)
            pthread_cond_wait(&pool->cond, &pool->mutex);
        tg_offload_job_t *job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        --pool->queued;
        pthread_mutex_unlock(&pool->mutex);
        job->work(job->data);
        h2o_multithread_send_message(&pool->receiver, &job->message);
    }
    return NULL;
}

static void on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        tg_offload_job_t *job = H2O_STRUCT_FROM_MEMBER(tg_offload_job_t, message.link, messages->next);
        h2o_linklist_unlink(&job->message.link);
        job->done(job->data);
        free(job);
    }
}

tg_offload_t *tg_offload_create(h2o_evloop_t *loop, size_t nthreads)
{
    tg_offload_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(pool->queue, &pool->receiver, on_done);
    for (size_t i = 0; i < nthreads; ++i) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&tid, &attr, thread_main, pool);
        pthread_attr_destroy(&attr);
        if (rc != 0)
            return i > 0 ? pool : NULL;
    }
    return pool;
}

int tg_offload_submit(tg_offload_t *pool, tg_offload_work_fn work, tg_offload_done_fn done, void *data)
{
    tg_offload_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return -1;
    job->work = work;
    job->done = done;
    job->data = data;
    pthread_mutex_lock(&pool->mutex);
    if (pool->queued >= TG_OFFLOAD_MAX_QUEUED) {
        pthread_mutex_unlock(&pool->mutex);
        free(job);
        return -1;
    }
    if (pool->tail != NULL)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    ++pool->queued;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->mutex);
    return 0;
}
