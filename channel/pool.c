/* SPDX-License-Identifier: BSD-2-Clause */
/* pool.c - a fixed set of threads running frame jobs in FIFO order. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"

struct mig_pool {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct mig_job *head, *tail;
	bool stop;
	int n;
	pthread_t th[];
};

static void *worker(void *arg)
{
	struct mig_pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (!p->head)
			break;
		struct mig_job *j = p->head;
		if (!(p->head = j->next))
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		j->run(j);
		pthread_mutex_lock(&p->mu);
		j->done = true;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct mig_pool *mig_pool_new(int threads)
{
	struct mig_pool *p;

	if (threads <= 1 || !(p = calloc(1, sizeof *p + (size_t)threads * sizeof(pthread_t))))
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	for (; p->n < threads; p->n++)
		if (pthread_create(&p->th[p->n], NULL, worker, p) != 0)
			break;
	if (p->n == 0) { /* no threads at all: run inline */
		mig_pool_free(p);
		return NULL;
	}
	return p;
}

void mig_pool_submit(struct mig_pool *p, struct mig_job *job,
		     void (*run)(struct mig_job *))
{
	job->run = run;
	job->next = NULL;
	job->done = false;
	if (!p) {
		run(job);
		job->done = true;
		return;
	}
	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
}

bool mig_pool_done(struct mig_pool *p, struct mig_job *job)
{
	bool d;

	if (!p)
		return job->done;
	pthread_mutex_lock(&p->mu);
	d = job->done;
	pthread_mutex_unlock(&p->mu);
	return d;
}

void mig_pool_wait(struct mig_pool *p, struct mig_job *job)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	while (!job->done)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void mig_pool_free(struct mig_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int mig_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}
