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
 * Requests in flight: the caller's requests run on the handle's own
 * connection (kept alive between requests); objects it announces with
 * snap_objstore_prefetch are fetched meanwhile by S3_FETCHERS threads,
 * each with its own connection, into at most S3_PREFETCH slots; a get of
 * an announced name waits for that fetch instead of asking again (one
 * that failed or has not started is simply fetched by the get itself, so
 * a hint never changes a result or an error).
 *
 * One request, its retries and its errors are s3http.c's.
 */
#include "s3http.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

/* GET one whole object of at most max bytes into a new buffer, on
 * handle h. */
static int s3_fetch(snap_objstore *o, CURL *h, const char *name,
		    size_t max, uint8_t **data, size_t *len, snap_err *err)
{
	s3req q;
	int rc = snap_s3_simple(o, h, "GET", name, NULL, 0, max, &q, err);
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
		size_t max = f->max;
		f->state = PF_RUNNING;
		pthread_mutex_unlock(&s->mu);
		snap_err e = {0};
		uint8_t *data = NULL;
		size_t len = 0;
		int rc = s3_fetch(o, h, name, max, &data, &len, &e);
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

/* Announce name, to be read with the limit max: queue it for the
 * prefetch threads (started on first use); dropped when it is already
 * there or every slot is busy. */
static void s3_prefetch(snap_objstore *o, const char *name, size_t max)
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
	f->max = max;
	f->state = PF_QUEUED;
	f->age = ++s->pfclock;
	pthread_cond_broadcast(&s->cv);
out:
	pthread_mutex_unlock(&s->mu);
}

/* Whether snap_objstore_interrupt is on for o. */
static int s3_interrupted(snap_objstore *o)
{
	return __atomic_load_n(&o->intr, __ATOMIC_ACQUIRE);
}

/* snap_objstore_interrupt turned on: wake a get waiting in pf_take (the
 * request in flight sees the flag in snap_s3_run). */
static void s3_interrupt(snap_objstore *o)
{
	struct snap_s3 *s = o->s3;
	if (!s || !s->mu_ok)
		return;
	pthread_mutex_lock(&s->mu);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Take name's prefetched bytes: 1 with *data set, 0 when there are none
 * (never announced, not started, the fetch failed, or, when intr, o was
 * interrupted while it ran: the slot then stays for its fetch). */
static int pf_take(snap_objstore *o, const char *name, uint8_t **data,
		   size_t *len, int intr)
{
	struct snap_s3 *s = o->s3;
	if (!s->mu_ok)
		return 0;
	int got = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < S3_PREFETCH; i++) {
		struct s3pf *f = &s->pf[i];
		if (f->state == PF_FREE || strcmp(f->name, name))
			continue;
		while (f->state == PF_RUNNING && !(intr && s3_interrupted(o)))
			pthread_cond_wait(&s->cv, &s->mu);
		if (f->state == PF_RUNNING)
			break;      /* interrupted: the get fails at once */
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

/* GET one whole object of at most max bytes into a new buffer (the
 * prefetched bytes when it was announced and fits). */
static int s3_get(snap_objstore *o, const char *name, size_t max,
		  uint8_t **data, size_t *len, snap_err *err)
{
	if (pf_take(o, name, data, len, 1)) {
		if (*len <= max)
			return 0;
		free(*data);   /* fetched again: the limit's error */
		*data = NULL;
	}
	return s3_fetch(o, o->s3->curl, name, max, data, len, err);
}

/* Forget name's prefetched bytes (it is about to change): a fetch
 * running is waited for, interrupted or not, so no later get takes bytes
 * from before the change. */
static void pf_drop(snap_objstore *o, const char *name)
{
	uint8_t *data;
	size_t len;
	if (pf_take(o, name, &data, &len, 0))
		free(data);
}

/* PUT one whole object (a 404 means the bucket went away). */
static int s3_put(snap_objstore *o, const char *name, const void *data,
		  size_t len, snap_err *err)
{
	s3req q;
	pf_drop(o, name);
	int rc = snap_s3_simple(o, o->s3->curl, "PUT", name, data, len, 0, &q,
			   err);
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
	pf_drop(o, name);
	int rc = snap_s3_simple(o, o->s3->curl, "DELETE", name, NULL, 0, 0, &q,
			   err);
	free(q.resp);
	return rc == -ENOENT ? 0 : rc;
}

/* Where a listing is, between its pages. */
struct s3list {
	char *token;           /* NextContinuationToken of the last page */
	char *last;            /* the largest key listed so far, or NULL */
	unsigned pages;
};

/* Call fn for every <Contents> of a ListObjectsV2 page whose key is
 * directly under want (PREFIX/dir/); st->token gets NextContinuationToken
 * when the listing is truncated (NULL otherwise: a token is never used
 * twice), st->last the page's largest key.  A page must move past the
 * keys of the pages before it: one that does not is a server that would
 * make the listing go round forever. */
static int list_page(snap_objstore *o, const uint8_t *doc, size_t len,
		     const char *want, snap_objstore_list_fn fn, void *ctx,
		     struct s3list *st, snap_err *err)
{
	free(st->token);
	st->token = NULL;
	xmlDocPtr d = snap_s3_xml_read(doc, len);
	if (!d)
		return snap_err_set(err, -EIO, "%s: the listing is not XML, or "
				    "declares a DTD (refused)", o->url);
	int rc = 0, truncated = 0;
	size_t plen = strlen(o->s3->prefix);
	char *prev = st->last, *top = NULL;
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
			free(st->token);
			st->token = t && *t ? strdup((const char *)t) : NULL;
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
			if (key && prev && strcmp(key, prev) <= 0) {
				rc = snap_err_set(err, -EIO, "%s: the listing "
						  "does not advance (a page "
						  "repeats keys up to \"%.200s\"): "
						  "the server is broken",
						  o->url, prev);
			} else if (key && (!top || strcmp(key, top) > 0)) {
				free(top);
				top = strdup(key);
			}
			if (rc == 0 && key && !strncmp(key, want, strlen(want)) &&
			    !strchr(key + strlen(want), '/') &&
			    snap_objstore_name_check(key + plen) == 0)
				rc = fn(ctx, key + plen, size);
			free(key);
		}
	}
	xmlFreeDoc(d);
	if (top) {
		free(st->last);
		st->last = top;
	}
	if (!truncated) {
		free(st->token);
		st->token = NULL;
	} else if (!st->token && rc == 0) {
		rc = snap_err_set(err, -EIO, "%s: a truncated listing without "
				  "a continuation token", o->url);
	}
	return rc;
}

/* ListObjectsV2 of PREFIX/dir/, page by page (continuation tokens): a
 * token the server gives twice in a row, or more than S3_LIST_PAGES
 * pages, fail the listing instead of going round forever. */
static int s3_list(snap_objstore *o, const char *dir,
		   snap_objstore_list_fn fn, void *ctx, snap_err *err)
{
	char want[S3_PREFIX_MAX + 300], query[3072];
	snprintf(want, sizeof want, "%s%s/", o->s3->prefix, dir);
	struct s3list st = { NULL, NULL, 0 };
	char *token = NULL;    /* the one this page is asked with */
	int rc = 0;
	do {
		if (++st.pages > S3_LIST_PAGES) {
			rc = snap_err_set(err, -EIO, "%s: the listing of %s "
					  "has more than %u pages: refused",
					  o->url, dir, S3_LIST_PAGES);
			break;
		}
		/* Parameters sorted by name, values AWS-encoded; every step
		 * checked (a server chooses the token's length). */
		query[0] = '\0';
		if (token) {
			snprintf(query, sizeof query, "continuation-token=");
			if (snap_s3_enc_append(query, sizeof query, token,
					       0) < 0 ||
			    strlen(query) + 1 >= sizeof query)
				rc = -ENAMETOOLONG;
			else
				strcat(query, "&");
		}
		if (rc == 0 && strlen(query) + 40 < sizeof query)
			strcat(query, "delimiter=%2F&list-type=2&prefix=");
		else
			rc = -ENAMETOOLONG;
		if (rc == 0 &&
		    snap_s3_enc_append(query, sizeof query, want, 0) < 0)
			rc = -ENAMETOOLONG;
		s3req q;
		memset(&q, 0, sizeof q);
		q.method = "GET";
		if (rc == 0 && snap_s3_url(o, NULL, query, &q) < 0)
			rc = -ENAMETOOLONG;
		if (rc == -ENAMETOOLONG)
			rc = snap_err_set(err, rc, "%s: listing too long",
					  o->url);
		if (rc == 0)
			rc = snap_s3_run(o, o->s3->curl, &q, err);
		if (rc == 0)
			rc = snap_s3_status(o, &q, "the listing", err);
		if (rc == -ENOENT)
			rc = snap_err_set(err, -ENOENT, "%s: no bucket %s at "
					  "%s", o->url, o->s3->bucket,
					  o->s3->endpoint);
		if (rc == 0)
			rc = list_page(o, q.resp, q.rlen, want, fn, ctx, &st,
				       err);
		free(q.resp);
		if (rc == 0 && st.token && token && !strcmp(st.token, token))
			rc = snap_err_set(err, -EIO, "%s: the server gave the "
					  "same continuation token twice: the "
					  "listing does not advance", o->url);
		free(token);
		token = st.token;
		st.token = NULL;
	} while (rc == 0 && token);
	free(token);
	free(st.last);
	return rc;
}

/* Free the handle; the secret is zeroed first. */
static void s3_close(snap_objstore *o)
{
	struct snap_s3 *s = o->s3;
	if (!s)
		return;
	if (s->mu_ok) {
		/* A prefetch in flight is not waited for. */
		__atomic_store_n(&o->cancel, 1, __ATOMIC_RELEASE);
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
	s3_put, s3_get, s3_list, s3_del, s3_close, s3_prefetch, s3_interrupt,
};

/* A HEAD of the bucket answered 400, which has no body to say why (a
 * region the bucket is not in, most often): ask again with a GET of one
 * key, whose error document names the reason.  Always an error. */
static int s3_bucket_why(snap_objstore *o, snap_err *err)
{
	s3req q;
	memset(&q, 0, sizeof q);
	q.method = "GET";
	if (snap_s3_url(o, NULL, "list-type=2&max-keys=1", &q) < 0)
		return snap_err_set(err, -ENAMETOOLONG, "%s: name too long",
				    o->url);
	int rc = snap_s3_run(o, o->s3->curl, &q, err);
	if (rc == 0)
		rc = snap_s3_status(o, &q, "the bucket", err);
	free(q.resp);
	if (rc == 0)     /* answered this time: still, the HEAD did not */
		rc = snap_err_set(err, -EIO, "%s: the bucket: the server "
				  "answered 400", o->url);
	return rc;
}

/* Refuse a prefix whose keys would not be the ones listed: a "." or ".."
 * segment (an HTTP client may resolve it in a request's path, never in a
 * listing's prefix=: objects written where no listing finds them), an
 * empty one ("a//b"), or one longer than S3_PREFIX_MAX. */
static int prefix_check(snap_objstore *o, const char *pre, size_t plen,
			snap_err *err)
{
	if (plen > S3_PREFIX_MAX)
		return snap_err_set(err, -ENAMETOOLONG, "%.100s...: the prefix "
				    "is longer than %d bytes", o->url,
				    S3_PREFIX_MAX);
	for (size_t i = 0; i <= plen; ) {
		size_t j = i;
		while (j < plen && pre[j] != '/')
			j++;
		size_t n = j - i;
		if (plen > 0 && (n == 0 || (n == 1 && pre[i] == '.') ||
				 (n == 2 && !strncmp(pre + i, "..", 2))))
			return snap_err_set(err, -EINVAL, "%s: the prefix has "
					    "an empty, \".\" or \"..\" part: "
					    "give it without them", o->url);
		i = j + 1;
	}
	return 0;
}

int snap_objstore_s3_open(snap_objstore *o, const char *rest, unsigned flags,
			  snap_err *err)
{
	(void)flags;   /* buckets are never created: a missing one is an error */
	snap_s3_init();
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
	int rc = prefix_check(o, pre, plen, err);
	if (rc < 0)
		return rc;
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
	/* User information in the endpoint (http://KEY:SECRET@host) would
	 * be echoed by every message naming the endpoint, into the event
	 * history and the daemon's log: refused, and not repeated. */
	const char *auth = strstr(ep, "://");
	auth = auth ? auth + 3 : ep;
	if (memchr(auth, '@', strcspn(auth, "/?#")))
		return snap_err_set(err, -EINVAL, "%s: AWS_ENDPOINT_URL (or "
				    "--endpoint) holds user information "
				    "(user@ or key:secret@): give the host "
				    "alone, credentials only in "
				    "AWS_ACCESS_KEY_ID and "
				    "AWS_SECRET_ACCESS_KEY", o->url);
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
	rc = snap_s3_simple(o, s->curl, "HEAD", NULL, NULL, 0, 0, &q, err);
	free(q.resp);
	if (rc == -EIO && q.status == 400)
		rc = s3_bucket_why(o, err);
	if (rc == -ENOENT)
		rc = snap_err_set(err, -ENOENT, "%s: no bucket %s at %s",
				  o->url, s->bucket, s->endpoint);
	return rc;
}
