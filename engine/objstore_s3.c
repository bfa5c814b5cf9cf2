/*
 * engine/objstore_s3.c — the s3:// object store: any S3-compatible service
 * through libcurl, signed with libcurl's own SigV4 (CURLOPT_AWS_SIGV4),
 * path-style addressing, listings read with libxml2.
 *
 *   s3://BUCKET/PREFIX      objects are BUCKET/PREFIX/<name>
 *   AWS_ENDPOINT_URL        the service (default https://s3.REGION.amazonaws.com)
 *   AWS_REGION              default us-east-1
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 *                           credentials: from the environment only, never
 *                           on a command line, never in a message
 *
 * What a server needs, learnt on Swift's s3api (README "An S3 server for
 * tests"): every request carries x-amz-content-sha256 (the body's real
 * SHA-256: libcurl signs the header we send but does not add it); query
 * parameters sorted by name, values encoded the AWS way (curl does not
 * canonicalize a query); the key and secret go in CURLOPT_USERNAME and
 * CURLOPT_PASSWORD (a key may hold a colon, which CURLOPT_USERPWD would
 * split); no conditional PUT anywhere (the format never needs one).
 *
 * Requests in flight: the caller's requests run on the handle's own
 * connection (kept alive between requests); objects it announces with
 * snap_objstore_prefetch are fetched meanwhile by S3_FETCHERS threads,
 * each with its own connection, into at most S3_PREFETCH slots; a get of
 * an announced name waits for that fetch instead of asking again (one
 * that failed or has not started is simply fetched by the get itself, so
 * a hint never changes a result or an error).
 *
 * Failures: connection errors, timeouts, resets, 5xx and 429 are retried
 * (5 attempts, backoff 0.25 s doubling); 403 is -EACCES (wrong or unknown
 * credentials), a missing object -ENOENT, a missing bucket -ENOENT with a
 * message that says so, anything else -EIO with the server's code.
 */
#include "objstore_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "codec.h"

#define S3_ATTEMPTS 5
#define S3_BACKOFF_MS 250
#define S3_CONNECT_TIMEOUT_S 10L
#define S3_STALL_S 60L
#define S3_FETCHERS 1          /* prefetch threads: with the caller's own,
				  two requests in flight (memory: peak RSS
				  <= 64 MB, tests/bench/README.md) */
#define S3_PREFETCH 4          /* objects fetched ahead, at most */

/* One object fetched ahead of its get. */
struct s3pf {
	char name[128];
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
	long status;
	CURL *h;               /* the handle it runs on */
} s3req;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* libcurl's global state, once per process. */
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	xmlInitParser();
}

/* Append the AWS encoding of s (unreserved kept; '/' kept when keep_slash). */
static int enc_append(char *out, size_t cap, const char *s, int keep_slash)
{
	size_t n = strlen(out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
			    *p == '.' || *p == '~' || (keep_slash && *p == '/');
		if (n + 4 >= cap)
			return -ENAMETOOLONG;
		if (plain)
			out[n++] = (char)*p;
		else
			n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
	}
	out[n] = '\0';
	return 0;
}

/* libcurl write callback: grow the response buffer (first to the
 * announced length: a pack is one allocation, not a doubling series). */
static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
	s3req *q = ctx;
	size_t len = sz * n;
	if (q->rlen + len + 1 > q->rcap) {
		curl_off_t cl = -1;
		if (!q->rcap)
			curl_easy_getinfo(q->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
					  &cl);
		size_t cap = q->rcap ? q->rcap : 65536;
		if (cl > 0 && (uint64_t)cl < SIZE_MAX / 2 &&
		    (size_t)cl + 1 > cap)
			cap = (size_t)cl + 1;
		while (cap < q->rlen + len + 1)
			cap *= 2;
		uint8_t *b = realloc(q->resp, cap);
		if (!b)
			return 0;     /* libcurl fails the transfer */
		q->resp = b;
		q->rcap = cap;
	}
	memcpy(q->resp + q->rlen, p, len);
	q->rlen += len;
	q->resp[q->rlen] = '\0';
	return len;
}

/* libcurl read callback: the request body. */
static size_t on_send(char *p, size_t sz, size_t n, void *ctx)
{
	s3req *q = ctx;
	size_t len = q->len - q->sent;
	if (len > sz * n)
		len = sz * n;
	memcpy(p, q->body + q->sent, len);
	q->sent += len;
	return len;
}

/* The text of the first element called tag in an XML document, or NULL
 * (free()). */
static char *xml_first(const uint8_t *doc, size_t len, const char *tag)
{
	xmlDocPtr d = xmlReadMemory((const char *)doc, (int)len, NULL, NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (!d)
		return NULL;
	char *out = NULL;
	xmlNodePtr stack[64];
	int sp = 0;
	xmlNodePtr n = xmlDocGetRootElement(d);
	while (n && !out) {
		if (n->type == XML_ELEMENT_NODE &&
		    !strcmp((const char *)n->name, tag)) {
			xmlChar *t = xmlNodeGetContent(n);
			out = t ? strdup((const char *)t) : NULL;
			xmlFree(t);
			break;
		}
		if (n->children && sp < 64) {
			stack[sp++] = n->next;
			n = n->children;
			continue;
		}
		n = n->next;
		while (!n && sp > 0)
			n = stack[--sp];
	}
	xmlFreeDoc(d);
	return out;
}

/* Whether a libcurl failure is worth another attempt. */
static int transient(CURLcode c)
{
	return c == CURLE_COULDNT_CONNECT || c == CURLE_OPERATION_TIMEDOUT ||
	       c == CURLE_SEND_ERROR || c == CURLE_RECV_ERROR ||
	       c == CURLE_GOT_NOTHING || c == CURLE_PARTIAL_FILE ||
	       c == CURLE_COULDNT_RESOLVE_HOST;
}

/* Run one request with retries; 0 with q->status set, or a negative
 * errno when the service could not be reached. */
static int s3_run(snap_objstore *o, CURL *h, s3req *q, snap_err *err)
{
	struct snap_s3 *s = o->s3;
	uint8_t sha[32];
	char hex[65], hdr[128];
	if (snap_sha256(q->body ? q->body : (const uint8_t *)"", q->len,
			sha) < 0)
		return snap_err_set(err, -ENOMEM, "out of memory");
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha[i]);
	snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s", hex);
	CURLcode c = CURLE_OK;
	for (int attempt = 0; attempt < S3_ATTEMPTS; attempt++) {
		if (attempt > 0) {
			long ms = (long)S3_BACKOFF_MS << (attempt - 1);
			struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
			nanosleep(&ts, NULL);    /* backoff, not readiness */
		}
		/* Only headers that are sent: libcurl signs every header of
		 * this list, also an "Expect:" that only removes one. */
		struct curl_slist *hl = curl_slist_append(NULL, hdr);
		if (!hl)
			return snap_err_set(err, -ENOMEM, "out of memory");
		q->sent = 0;
		q->rlen = 0;
		q->h = h;
		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_URL, q->url);
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, s->key);
		curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, S3_CONNECT_TIMEOUT_S);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, S3_STALL_S);
		if (!strcmp(q->method, "PUT")) {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_send);
			curl_easy_setopt(h, CURLOPT_READDATA, q);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
					 (curl_off_t)q->len);
			/* Send the body at once after "Expect: 100-continue". */
			curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
		} else if (!strcmp(q->method, "HEAD")) {
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		} else if (strcmp(q->method, "GET")) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
		}
		c = curl_easy_perform(h);
		curl_slist_free_all(hl);
		q->status = 0;
		if (c == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
		if (c == CURLE_OK && q->status < 500 && q->status != 429)
			return 0;
		if (c != CURLE_OK && !transient(c))
			break;
	}
	if (c == CURLE_OK)     /* 5xx or 429 on every attempt */
		return 0;
	return snap_err_set(err, c == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT :
			    -EHOSTUNREACH,
			    "%s: cannot reach the S3 endpoint %s: %s", o->url,
			    s->endpoint, curl_easy_strerror(c));
}

/* Turn a response status into 0 or an error naming what it means. */
static int s3_status(snap_objstore *o, s3req *q, const char *what,
		     snap_err *err)
{
	if (q->status >= 200 && q->status < 300)
		return 0;
	char *code = q->rlen ? xml_first(q->resp, q->rlen, "Code") : NULL;
	int rc;
	if (q->status == 404 && code && !strcmp(code, "NoSuchBucket"))
		rc = snap_err_set(err, -ENOENT, "%s: no bucket %s at %s",
				  o->url, o->s3->bucket, o->s3->endpoint);
	else if (q->status == 404)
		rc = -ENOENT;
	else if (q->status == 403)
		rc = snap_err_set(err, -EACCES,
				  "%s: access denied (%s) to %s: check "
				  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
				  o->url, code ? code : "403", what);
	else
		rc = snap_err_set(err, -EIO, "%s: %s: the server answered %ld "
				  "%s", o->url, what, q->status,
				  code ? code : "");
	free(code);
	return rc;
}

/* The URL of object name (NULL: the bucket) into q->url. */
static int s3_url(snap_objstore *o, const char *name, const char *query,
		  s3req *q)
{
	struct snap_s3 *s = o->s3;
	snprintf(q->url, sizeof q->url, "%s/", s->endpoint);
	if (enc_append(q->url, sizeof q->url, s->bucket, 0) < 0)
		return -ENAMETOOLONG;
	if (name) {
		strncat(q->url, "/", sizeof q->url - strlen(q->url) - 1);
		if (enc_append(q->url, sizeof q->url, s->prefix, 1) < 0 ||
		    enc_append(q->url, sizeof q->url, name, 1) < 0)
			return -ENAMETOOLONG;
	}
	if (query) {
		if (strlen(q->url) + strlen(query) + 2 > sizeof q->url)
			return -ENAMETOOLONG;
		strcat(q->url, "?");
		strcat(q->url, query);
	}
	return 0;
}

/* Run method on name (or the bucket) with body on handle h; status
 * checked. */
static int s3_simple(snap_objstore *o, CURL *h, const char *method,
		     const char *name, const void *body, size_t len, s3req *q,
		     snap_err *err)
{
	memset(q, 0, sizeof *q);
	q->method = method;
	q->body = body;
	q->len = len;
	if (s3_url(o, name, NULL, q) < 0)
		return snap_err_set(err, -ENAMETOOLONG, "%s: name too long",
				    o->url);
	int rc = s3_run(o, h, q, err);
	if (rc == 0)
		rc = s3_status(o, q, name ? name : "the bucket", err);
	return rc;
}

/* GET one whole object into a new buffer, on handle h. */
static int s3_fetch(snap_objstore *o, CURL *h, const char *name,
		    uint8_t **data, size_t *len, snap_err *err)
{
	s3req q;
	int rc = s3_simple(o, h, "GET", name, NULL, 0, &q, err);
	if (rc < 0) {
		free(q.resp);
		return rc;
	}
	*data = q.resp ? q.resp : malloc(1);
	*len = q.rlen;
	return *data ? 0 : snap_err_set(err, -ENOMEM, "out of memory");
}

/* A prefetch thread: fetch queued names, oldest hint first, on its own
 * handle (and so its own connection), until the store closes. */
static void *pf_main(void *arg)
{
	snap_objstore *o = arg;
	struct snap_s3 *s = o->s3;
	CURL *h = curl_easy_init();
	pthread_mutex_lock(&s->mu);
	while (h && !s->stop) {
		struct s3pf *f = NULL;
		for (int i = 0; i < S3_PREFETCH; i++)
			if (s->pf[i].state == PF_QUEUED &&
			    (!f || s->pf[i].age < f->age))
				f = &s->pf[i];
		if (!f) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		char name[sizeof f->name];
		memcpy(name, f->name, sizeof name);
		f->state = PF_RUNNING;
		pthread_mutex_unlock(&s->mu);
		snap_err e = {0};
		uint8_t *data = NULL;
		size_t len = 0;
		int rc = s3_fetch(o, h, name, &data, &len, &e);
		pthread_mutex_lock(&s->mu);
		f->data = rc == 0 ? data : NULL;
		f->len = len;
		f->rc = rc;
		f->state = PF_DONE;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

/* Announce name: queue it for the prefetch threads (started on first
 * use); dropped when it is already there or every slot is busy. */
static void s3_prefetch(snap_objstore *o, const char *name)
{
	struct snap_s3 *s = o->s3;
	if (!s->mu_ok || strlen(name) >= sizeof s->pf[0].name)
		return;
	pthread_mutex_lock(&s->mu);
	struct s3pf *f = NULL;
	for (int i = 0; i < S3_PREFETCH; i++) {
		struct s3pf *p = &s->pf[i];
		if (p->state != PF_FREE && !strcmp(p->name, name))
			goto out;
		if (p->state == PF_FREE)
			f = p;
	}
	if (!f) {   /* evict the oldest fetched one nobody took */
		for (int i = 0; i < S3_PREFETCH; i++)
			if (s->pf[i].state == PF_DONE &&
			    (!f || s->pf[i].age < f->age))
				f = &s->pf[i];
		if (!f)
			goto out;
		free(f->data);
		f->data = NULL;
	}
	while (s->nfetchers < S3_FETCHERS &&
	       pthread_create(&s->fetchers[s->nfetchers], NULL, pf_main,
			      o) == 0)
		s->nfetchers++;
	if (s->nfetchers == 0) {
		f->state = PF_FREE;
		goto out;
	}
	snprintf(f->name, sizeof f->name, "%s", name);
	f->state = PF_QUEUED;
	f->age = ++s->pfclock;
	pthread_cond_broadcast(&s->cv);
out:
	pthread_mutex_unlock(&s->mu);
}

/* Take name's prefetched bytes: 1 with *data set, 0 when there are none
 * (never announced, not started, or the fetch failed). */
static int pf_take(struct snap_s3 *s, const char *name, uint8_t **data,
		   size_t *len)
{
	if (!s->mu_ok)
		return 0;
	int got = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < S3_PREFETCH; i++) {
		struct s3pf *f = &s->pf[i];
		if (f->state == PF_FREE || strcmp(f->name, name))
			continue;
		while (f->state == PF_RUNNING)
			pthread_cond_wait(&s->cv, &s->mu);
		if (f->state == PF_DONE && f->rc == 0) {
			*data = f->data;
			*len = f->len;
			got = 1;
		} else {
			free(f->data);
		}
		f->data = NULL;
		f->state = PF_FREE;
		break;
	}
	pthread_mutex_unlock(&s->mu);
	return got;
}

/* GET one whole object into a new buffer (the prefetched bytes when it
 * was announced). */
static int s3_get(snap_objstore *o, const char *name, uint8_t **data,
		  size_t *len, snap_err *err)
{
	if (pf_take(o->s3, name, data, len))
		return 0;
	return s3_fetch(o, o->s3->curl, name, data, len, err);
}

/* Forget name's prefetched bytes (it is about to change). */
static void pf_drop(struct snap_s3 *s, const char *name)
{
	uint8_t *data;
	size_t len;
	if (pf_take(s, name, &data, &len))
		free(data);
}

/* PUT one whole object (a 404 means the bucket went away). */
static int s3_put(snap_objstore *o, const char *name, const void *data,
		  size_t len, snap_err *err)
{
	s3req q;
	pf_drop(o->s3, name);
	int rc = s3_simple(o, o->s3->curl, "PUT", name, data, len, &q, err);
	free(q.resp);
	if (rc == -ENOENT)   /* 404 on a PUT: the bucket went away */
		rc = snap_err_set(err, -ENOENT, "%s: no bucket %s at %s",
				  o->url, o->s3->bucket, o->s3->endpoint);
	return rc;
}

/* DELETE one object; one already gone is not an error. */
static int s3_del(snap_objstore *o, const char *name, snap_err *err)
{
	s3req q;
	pf_drop(o->s3, name);
	int rc = s3_simple(o, o->s3->curl, "DELETE", name, NULL, 0, &q, err);
	free(q.resp);
	return rc == -ENOENT ? 0 : rc;
}

/* Call fn for every <Contents> of a ListObjectsV2 page whose key is
 * directly under want (PREFIX/dir/); *token gets NextContinuationToken
 * when the listing is truncated. */
static int list_page(snap_objstore *o, const uint8_t *doc, size_t len,
		     const char *want, snap_objstore_list_fn fn, void *ctx,
		     char **token, snap_err *err)
{
	xmlDocPtr d = xmlReadMemory((const char *)doc, (int)len, NULL, NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (!d)
		return snap_err_set(err, -EIO, "%s: the listing is not XML",
				    o->url);
	int rc = 0, truncated = 0;
	size_t plen = strlen(o->s3->prefix);
	xmlNodePtr root = xmlDocGetRootElement(d);
	for (xmlNodePtr n = root ? root->children : NULL; n && rc == 0;
	     n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		const char *nm = (const char *)n->name;
		if (!strcmp(nm, "IsTruncated")) {
			xmlChar *t = xmlNodeGetContent(n);
			truncated = t && !strcmp((const char *)t, "true");
			xmlFree(t);
		} else if (!strcmp(nm, "NextContinuationToken")) {
			xmlChar *t = xmlNodeGetContent(n);
			free(*token);
			*token = t ? strdup((const char *)t) : NULL;
			xmlFree(t);
		} else if (!strcmp(nm, "Contents")) {
			char *key = NULL;
			uint64_t size = 0;
			for (xmlNodePtr c = n->children; c; c = c->next) {
				if (c->type != XML_ELEMENT_NODE)
					continue;
				xmlChar *t = xmlNodeGetContent(c);
				if (!strcmp((const char *)c->name, "Key")) {
					free(key);
					key = t ? strdup((const char *)t) : NULL;
				} else if (!strcmp((const char *)c->name,
						   "Size") && t) {
					size = strtoull((const char *)t, NULL,
							10);
				}
				xmlFree(t);
			}
			if (key && !strncmp(key, want, strlen(want)) &&
			    !strchr(key + strlen(want), '/') &&
			    snap_objstore_name_check(key + plen) == 0)
				rc = fn(ctx, key + plen, size);
			free(key);
		}
	}
	xmlFreeDoc(d);
	if (!truncated) {
		free(*token);
		*token = NULL;
	} else if (!*token && rc == 0) {
		rc = snap_err_set(err, -EIO, "%s: a truncated listing without "
				  "a continuation token", o->url);
	}
	return rc;
}

/* ListObjectsV2 of PREFIX/dir/, page by page (continuation tokens). */
static int s3_list(snap_objstore *o, const char *dir,
		   snap_objstore_list_fn fn, void *ctx, snap_err *err)
{
	char want[1024], query[3072];
	snprintf(want, sizeof want, "%s%s/", o->s3->prefix, dir);
	char *token = NULL;
	int rc = 0;
	do {
		/* Parameters sorted by name, values AWS-encoded. */
		query[0] = '\0';
		if (token) {
			strcpy(query, "continuation-token=");
			if (enc_append(query, sizeof query, token, 0) < 0)
				rc = -ENAMETOOLONG;
			strcat(query, "&");
		}
		strcat(query, "delimiter=%2F&list-type=2&prefix=");
		if (rc == 0 && enc_append(query, sizeof query, want, 0) < 0)
			rc = -ENAMETOOLONG;
		s3req q;
		memset(&q, 0, sizeof q);
		q.method = "GET";
		if (rc == 0 && s3_url(o, NULL, query, &q) < 0)
			rc = -ENAMETOOLONG;
		if (rc == -ENAMETOOLONG)
			rc = snap_err_set(err, rc, "%s: listing too long",
					  o->url);
		if (rc == 0)
			rc = s3_run(o, o->s3->curl, &q, err);
		if (rc == 0)
			rc = s3_status(o, &q, "the listing", err);
		if (rc == -ENOENT)
			rc = snap_err_set(err, -ENOENT, "%s: no bucket %s at "
					  "%s", o->url, o->s3->bucket,
					  o->s3->endpoint);
		if (rc == 0)
			rc = list_page(o, q.resp, q.rlen, want, fn, ctx,
				       &token, err);
		free(q.resp);
	} while (rc == 0 && token);
	free(token);
	return rc;
}

/* Free the handle; the secret is zeroed first. */
static void s3_close(snap_objstore *o)
{
	struct snap_s3 *s = o->s3;
	if (!s)
		return;
	if (s->mu_ok) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		for (int i = 0; i < s->nfetchers; i++)
			pthread_join(s->fetchers[i], NULL);
		for (int i = 0; i < S3_PREFETCH; i++)
			free(s->pf[i].data);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
	}
	if (s->curl)
		curl_easy_cleanup(s->curl);
	free(s->endpoint);
	free(s->bucket);
	free(s->prefix);
	free(s->key);
	if (s->secret) {
		memset(s->secret, 0, strlen(s->secret));
		free(s->secret);
	}
	free(s);
	o->s3 = NULL;
}

static const snap_objstore_backend s3_backend = {
	s3_put, s3_get, s3_list, s3_del, s3_close, s3_prefetch,
};

int snap_objstore_s3_open(snap_objstore *o, const char *rest, unsigned flags,
			  snap_err *err)
{
	(void)flags;   /* buckets are never created: a missing one is an error */
	pthread_once(&curl_once, curl_init_once);
	o->be = &s3_backend;
	struct snap_s3 *s = o->s3 = calloc(1, sizeof *s);
	if (!s)
		return snap_err_set(err, -ENOMEM, "out of memory");
	if (pthread_mutex_init(&s->mu, NULL) == 0) {
		if (pthread_cond_init(&s->cv, NULL) == 0)
			s->mu_ok = 1;
		else
			pthread_mutex_destroy(&s->mu);
	}
	const char *slash = strchr(rest, '/');
	size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (blen == 0 || blen > 63)
		return snap_err_set(err, -EINVAL, "%s: no bucket name "
				    "(s3://BUCKET/PREFIX)", o->url);
	for (size_t i = 0; i < blen; i++) {
		char c = rest[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return snap_err_set(err, -EINVAL,
					    "%s: a bucket name is lowercase "
					    "letters, digits, '-' and '.'",
					    o->url);
	}
	const char *pre = slash ? slash + 1 : "";
	size_t plen = strlen(pre);
	while (plen && pre[plen - 1] == '/')
		plen--;
	const char *ep = getenv("AWS_ENDPOINT_URL");
	const char *region = getenv("AWS_REGION");
	const char *key = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	if (!region || !*region)
		region = "us-east-1";
	if (!key || !*key || !secret || !*secret)
		return snap_err_set(err, -EACCES,
				    "%s: no credentials: set AWS_ACCESS_KEY_ID "
				    "and AWS_SECRET_ACCESS_KEY", o->url);
	char def[256];
	if (!ep || !*ep) {
		snprintf(def, sizeof def, "https://s3.%s.amazonaws.com", region);
		ep = def;
	}
	if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
		return snap_err_set(err, -EINVAL, "AWS_ENDPOINT_URL %s: not an "
				    "http:// or https:// URL", ep);
	snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", region);
	s->endpoint = strdup(ep);
	s->bucket = strndup(rest, blen);
	s->prefix = malloc(plen + 2);
	s->key = strdup(key);
	s->secret = strdup(secret);
	s->curl = curl_easy_init();
	if (!s->endpoint || !s->bucket || !s->prefix || !s->key ||
	    !s->secret || !s->curl)
		return snap_err_set(err, -ENOMEM, "out of memory");
	size_t elen = strlen(s->endpoint);
	while (elen > 8 && s->endpoint[elen - 1] == '/')
		s->endpoint[--elen] = '\0';
	memcpy(s->prefix, pre, plen);
	if (plen)
		s->prefix[plen++] = '/';
	s->prefix[plen] = '\0';
	/* The bucket must answer: a missing bucket or bad credentials are
	 * found here, before anything is read or written. */
	s3req q;
	int rc = s3_simple(o, s->curl, "HEAD", NULL, NULL, 0, &q, err);
	free(q.resp);
	if (rc == -ENOENT)
		rc = snap_err_set(err, -ENOENT, "%s: no bucket %s at %s",
				  o->url, s->bucket, s->endpoint);
	return rc;
}
