/*
 * engine/s3http.h — one S3 request over libcurl for objstore_s3.c: the
 * s3:// handle, a request and its response, SigV4 signing, retries with
 * backoff, status codes turned into errors.  Internal to the engine.
 */
#ifndef ENGINE_S3HTTP_H
#define ENGINE_S3HTTP_H

#include "objstore_int.h"

#include <pthread.h>
#include <stdint.h>

#include <curl/curl.h>
#include <libxml/tree.h>

#define S3_ATTEMPTS 5
#define S3_BACKOFF_MS 250
#define S3_CONNECT_TIMEOUT_S 10L
#define S3_SLOW_BPS 1024L      /* slower than this ... */
#define S3_SLOW_S 30L          /* ... for this long: the attempt fails */
#define S3_DEADLINE_S 60       /* an attempt's time, plus ... */
#define S3_DEADLINE_BPS (256 << 10) /* ... its body at this rate */
#define S3_RETRY_S 60          /* no new attempt this long after the first */
#define S3_BODY_MAX ((size_t)16 << 20)  /* listings, error documents */
#define S3_TEXT_MAX 256        /* an error document's Code, Message */
#define S3_FETCHERS 2          /* prefetch threads: with the caller's own,
				  three requests in flight (memory: peak RSS
				  <= 64 MB, tests/bench/README.md) */
#define S3_PREFIX_MAX 900      /* bytes of an s3:// prefix, at most */
#define S3_LIST_PAGES 100000u /* pages of one listing, at most */
#define S3_PREFETCH 4          /* objects fetched ahead, at most */

/* One object fetched ahead of its get. */
struct s3pf {
	char name[128];
	size_t max;            /* the most bytes fetched (the get's limit) */
	enum { PF_FREE, PF_QUEUED, PF_RUNNING, PF_DONE } state;
	uint8_t *data;
	size_t len;
	int rc;
	uint64_t age;          /* order of the hints */
};

struct snap_s3 {
	CURL *curl;
	char *endpoint;        /* no trailing slash */
	char *bucket;
	char *prefix;          /* "" or ending in '/' */
	char *key;
	char *secret;
	char sigv4[96];        /* "aws:amz:REGION:s3" */
	/* prefetching (all under mu) */
	int mu_ok;             /* mu and cv initialized */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t fetchers[S3_FETCHERS];
	int nfetchers;         /* started */
	int stop;
	struct s3pf pf[S3_PREFETCH];
	uint64_t pfclock;
};

/* One request and its response. */
typedef struct s3req {
	const char *method;
	char url[4096];
	const uint8_t *body;
	size_t len, sent;
	uint8_t *resp;         /* response body (grown), NUL-terminated */
	size_t rlen, rcap;
	size_t max;            /* the most body accepted (0: S3_BODY_MAX) */
	int toobig;            /* the body passed max: the transfer stopped */
	long status;
	CURL *h;               /* the handle it runs on */
	snap_objstore *o;      /* its store (the cancel flag) */
	int64_t t0;            /* when the attempt began (monotonic ms) */
	int timedout;          /* the attempt passed its deadline */
	int cancelled;         /* snap_objstore_cancel stopped it */
	int interrupted;       /* snap_objstore_interrupt stopped it */
} s3req;

/* libcurl's and libxml2's global state, set up once per process. */
void snap_s3_init(void);

/* Append the AWS encoding of s to out (unreserved characters kept; '/'
 * kept when keep_slash); -ENAMETOOLONG past cap. */
int snap_s3_enc_append(char *out, size_t cap, const char *s, int keep_slash);

/* Parse a document the server sent: NULL when it is not XML or has a DTD
 * (refused: its entities could expand without bound).  xmlFreeDoc(). */
xmlDocPtr snap_s3_xml_read(const uint8_t *doc, size_t len);

/* The text of the first element called tag (at most cap - 1 bytes, control
 * characters as spaces), or NULL (none, or a refused document); free(). */
char *snap_s3_xml_first(const uint8_t *doc, size_t len, const char *tag,
			size_t cap);

/* Run q on handle h with retries; 0 with q->status set, or a negative
 * errno when the service could not be reached: -ETIMEDOUT when it was
 * too slow (S3_SLOW_BPS over S3_SLOW_S, or past the attempt's deadline,
 * S3_DEADLINE_S plus the body at S3_DEADLINE_BPS; no attempt begins
 * S3_RETRY_S after the first), -ECANCELED after snap_objstore_cancel,
 * -EINTR after snap_objstore_interrupt when h is o's own handle. */
int snap_s3_run(snap_objstore *o, CURL *h, s3req *q, snap_err *err);

/* Turn q's response status into 0 or an error naming what it means:
 * -ENOENT (404), -EACCES (403), -EAGAIN for 5xx and 429 (the server
 * failing or busy on every attempt: not the object), -EIO otherwise. */
int snap_s3_status(snap_objstore *o, s3req *q, const char *what,
		   snap_err *err);

/* The URL of object name (NULL: the bucket) with query into q->url. */
int snap_s3_url(snap_objstore *o, const char *name, const char *query,
		s3req *q);

/* Run method on name (or the bucket) with body on handle h, accepting a
 * response body of at most max bytes (0: S3_BODY_MAX); status checked. */
int snap_s3_simple(snap_objstore *o, CURL *h, const char *method,
		   const char *name, const void *body, size_t len,
		   size_t max, s3req *q, snap_err *err);

#endif
