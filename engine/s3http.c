/*
 * engine/s3http.c — one S3 request over libcurl (s3http.h), signed with
 * libcurl's own SigV4 (CURLOPT_AWS_SIGV4), path-style addressing.
 *
 * What a server needs, learnt on Swift's s3api (README "An S3 server for
 * tests"): every request carries x-amz-content-sha256 (the body's real
 * SHA-256: libcurl signs the header we send but does not add it); query
 * parameters sorted by name, values encoded the AWS way (curl does not
 * canonicalize a query); the key and secret go in CURLOPT_USERNAME and
 * CURLOPT_PASSWORD (a key may hold a colon, which CURLOPT_USERPWD would
 * split); no conditional PUT anywhere (the format never needs one).
 *
 * Failures: connection errors, timeouts, resets, 5xx and 429 are retried
 * (5 attempts, backoff 0.25 s doubling, none begun a minute after the
 * first); 403 is -EACCES (wrong or unknown
 * credentials), a missing object -ENOENT, a missing bucket -ENOENT with a
 * message that says so, anything else -EIO with the server's code.
 *
 * Time: an attempt fails when less than 1 KiB/s moves for 30 s (a server
 * that stalls after the headers, or trickles), or when it takes longer
 * than 60 s plus its body at 256 KiB/s; snap_objstore_cancel stops every
 * request at once, one in flight within a second (the progress callback),
 * so a daemon that stops never waits for a silent server.
 *
 * What a server sends is read as hostile: a document with a DTD is
 * refused before anything in it is read (an internal subset's entities
 * expanded a 140 KB error body into gigabytes), and the Code and Message
 * copied into a message are cut to S3_TEXT_MAX bytes, control characters
 * blanked (the message becomes one log line).
 */
#include "s3http.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "codec.h"

/* libcurl's and libxml2's global state, once per process. */
static void init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	xmlInitParser();
}

void snap_s3_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_once);
}

/* Append the AWS encoding of s (unreserved kept; '/' kept when keep_slash). */
int snap_s3_enc_append(char *out, size_t cap, const char *s, int keep_slash)
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
	size_t max = q->max ? q->max : S3_BODY_MAX;
	if (q->rlen + len > max) {
		q->toobig = 1;
		return 0;             /* libcurl stops the transfer */
	}
	if (q->rlen + len + 1 > q->rcap) {
		curl_off_t cl = -1;
		if (!q->rcap)
			curl_easy_getinfo(q->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
					  &cl);
		size_t cap = q->rcap ? q->rcap : 65536;
		if (cl > 0 && (uint64_t)cl <= max &&
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

/* Parse an XML document a server sent, or NULL.  A document with a DTD
 * is refused (S3 never sends one): an internal subset can declare
 * entities that expand a small body into gigabytes when read. */
xmlDocPtr snap_s3_xml_read(const uint8_t *doc, size_t len)
{
	static const char dtd[] = "<!DOCTYPE";
	if (len > INT_MAX || memmem(doc, len, dtd, sizeof dtd - 1))
		return NULL;
	xmlDocPtr d = xmlReadMemory((const char *)doc, (int)len, NULL, NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (d && (xmlGetIntSubset(d) || d->extSubset)) {
		xmlFreeDoc(d);
		return NULL;
	}
	return d;
}

/* The text of the first element called tag in an XML document, at most
 * cap - 1 bytes of it (cut at a character boundary), control characters
 * turned into spaces (it goes into one log line); NULL when there is none
 * or the document is refused (free()). */
char *snap_s3_xml_first(const uint8_t *doc, size_t len, const char *tag,
			size_t cap)
{
	xmlDocPtr d = snap_s3_xml_read(doc, len);
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
			out = t ? strndup((const char *)t, cap - 1) : NULL;
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
	if (!out)
		return NULL;
	size_t l = strlen(out);
	if (l == cap - 1) {   /* perhaps cut: no half character at the end */
		size_t k = l;
		while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
			k--;
		unsigned char lead = k > 0 ? (unsigned char)out[k - 1] : 0;
		size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 :
			      lead >= 0xC0 ? 2 : 1;
		if (lead >= 0xC0 && l - (k - 1) < need)
			l = k - 1;
	}
	out[l] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return out;
}

/* Monotonic milliseconds. */
static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether snap_objstore_cancel was called on o (or _cancel_all). */
static int cancelled(snap_objstore *o)
{
	return __atomic_load_n(&o->cancel, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&snap_objstore_all_cancelled, __ATOMIC_ACQUIRE);
}

/* Whether snap_objstore_interrupt is on and q runs on o's own handle
 * (the caller's request; a prefetch thread's goes on). */
static int interrupted(const s3req *q)
{
	return __atomic_load_n(&q->o->intr, __ATOMIC_ACQUIRE) &&
	       q->h == q->o->s3->curl;
}

/* Whether q is to stop now (cancelled or interrupted), noted in q. */
static int stopped(s3req *q)
{
	if (cancelled(q->o))
		q->cancelled = 1;
	else if (interrupted(q))
		q->interrupted = 1;
	return q->cancelled || q->interrupted;
}

/* libcurl progress callback (about once a second, also when nothing
 * moves): a cancelled store or an attempt past its deadline (S3_DEADLINE_S
 * plus the body, the larger way, at S3_DEADLINE_BPS) stops the transfer. */
static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	s3req *q = ctx;
	if (stopped(q))
		return 1;
	/* The body's size, the larger way; what has come so far when the
	 * server announced none (a chunked body keeps its deadline while
	 * it moves at S3_DEADLINE_BPS). */
	uint64_t bytes = q->len;
	curl_off_t seen[4] = {dltotal, dlnow, ultotal, ulnow};
	for (int i = 0; i < 4; i++)
		if (seen[i] > 0 && (uint64_t)seen[i] > bytes)
			bytes = (uint64_t)seen[i];
	int64_t limit = (int64_t)S3_DEADLINE_S * 1000 +
			(int64_t)(bytes * 1000 / S3_DEADLINE_BPS);
	if (mono_ms() - q->t0 > limit) {
		q->timedout = 1;
		return 1;
	}
	return 0;
}

/* Sleep ms, or less when q is stopped meanwhile. */
static void backoff(s3req *q, long ms)
{
	for (; ms > 0 && !stopped(q); ms -= 50) {
		struct timespec ts = {0, (ms < 50 ? ms : 50) * 1000000L};
		nanosleep(&ts, NULL);    /* backoff, not readiness */
	}
}

/* Whether a libcurl failure is worth another attempt. */
static int transient(CURLcode c)
{
	return c == CURLE_COULDNT_CONNECT || c == CURLE_OPERATION_TIMEDOUT ||
	       c == CURLE_SEND_ERROR || c == CURLE_RECV_ERROR ||
	       c == CURLE_GOT_NOTHING || c == CURLE_PARTIAL_FILE ||
	       c == CURLE_COULDNT_RESOLVE_HOST ||
	       c == CURLE_SSL_CONNECT_ERROR ||   /* a TLS handshake reset */
	       c == CURLE_HTTP2 || c == CURLE_HTTP2_STREAM;
}

/* Run one request with retries; 0 with q->status set, or a negative
 * errno when the service could not be reached. */
int snap_s3_run(snap_objstore *o, CURL *h, s3req *q, snap_err *err)
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
	int64_t first = mono_ms();
	q->o = o;
	q->h = h;
	q->timedout = q->cancelled = q->interrupted = 0;
	for (int attempt = 0; attempt < S3_ATTEMPTS; attempt++) {
		if (attempt > 0) {
			if (mono_ms() - first > (int64_t)S3_RETRY_S * 1000)
				break;
			backoff(q, (long)S3_BACKOFF_MS << (attempt - 1));
		}
		if (stopped(q))
			break;
		/* Only headers that are sent: libcurl signs every header of
		 * this list, also an "Expect:" that only removes one. */
		struct curl_slist *hl = curl_slist_append(NULL, hdr);
		if (!hl)
			return snap_err_set(err, -ENOMEM, "out of memory");
		q->sent = 0;
		q->rlen = 0;
		q->toobig = 0;
		q->timedout = 0;
		q->h = h;
		q->t0 = mono_ms();
		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_URL, q->url);
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, s->key);
		curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		/* The path as built: never "/../" resolved (a listing's
		 * prefix= would not be). */
		curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, S3_CONNECT_TIMEOUT_S);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, S3_SLOW_BPS);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, S3_SLOW_S);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, q);
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
		if (q->cancelled || q->interrupted)
			break;
		if (q->timedout)      /* our deadline: a timeout like curl's */
			c = CURLE_OPERATION_TIMEDOUT;
		if (q->toobig)
			return snap_err_set(err, -EFBIG, "%s: the server sent "
					    "more than such an object can hold "
					    "(%zu bytes): refused", o->url,
					    q->max ? q->max : S3_BODY_MAX);
		q->status = 0;
		if (c == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
		if (c == CURLE_OK && q->status < 500 && q->status != 429)
			return 0;
		if (c != CURLE_OK && !transient(c))
			break;
	}
	if (q->interrupted)
		return snap_err_set(err, -EINTR, "%s: interrupted (the reader "
				    "gave up)", o->url);
	if (q->cancelled)
		return snap_err_set(err, -ECANCELED, "%s: cancelled (snapfs is "
				    "stopping)", o->url);
	if (c == CURLE_OK)     /* 5xx or 429 on every attempt */
		return 0;
	if (c == CURLE_OPERATION_TIMEDOUT)
		return snap_err_set(err, -ETIMEDOUT, "%s: the S3 endpoint %s "
				    "timed out (%s: no answer in time, or less "
				    "than %ld bytes/s for %ld s)", o->url,
				    s->endpoint, q->timedout ? "past the "
				    "request's deadline" : "too slow",
				    S3_SLOW_BPS, S3_SLOW_S);
	/* -EHOSTUNREACH only when the server did not answer (what a daemon
	 * starts without, fs/offsite.c); a failure that another attempt
	 * would not mend (a certificate not trusted, a bad URL) is
	 * -EPROTO: a mistake in the configuration, or not the server. */
	return snap_err_set(err, transient(c) ? -EHOSTUNREACH : -EPROTO,
			    "%s: cannot reach the S3 endpoint %s: %s", o->url,
			    s->endpoint, curl_easy_strerror(c));
}

/* Turn a response status into 0 or an error naming what it means. */
int snap_s3_status(snap_objstore *o, s3req *q, const char *what,
		   snap_err *err)
{
	if (q->status >= 200 && q->status < 300)
		return 0;
	char *code = q->rlen ? snap_s3_xml_first(q->resp, q->rlen, "Code",
						    S3_TEXT_MAX) : NULL;
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
	else {
		/* The server's own sentence says what is wrong (a region
		 * the bucket is not in, a bad request); 403's is left out
		 * above (it can echo what was signed). */
		char *msg = code ? snap_s3_xml_first(q->resp, q->rlen,
						     "Message", S3_TEXT_MAX)
				 : NULL;
		/* 5xx and 429 (after every retry): the server failing or
		 * busy, not the object: -EAGAIN, never -EIO, which readers
		 * of the replica take for a damaged object (a row skipped,
		 * a lock taken for forged, a page remembered as bad). */
		int busy = q->status >= 500 || q->status == 429;
		rc = snap_err_set(err, busy ? -EAGAIN : -EIO, "%s: %s: the "
				  "server answered %ld%s%s%s%s%s", o->url, what,
				  q->status, code ? " " : "", code ? code : "",
				  msg ? ": " : "", msg ? msg : "",
				  busy ? " (on every attempt; try again "
				  "later)" : "");
		free(msg);
	}
	free(code);
	return rc;
}

/* The URL of object name (NULL: the bucket) into q->url. */
int snap_s3_url(snap_objstore *o, const char *name, const char *query,
		s3req *q)
{
	struct snap_s3 *s = o->s3;
	snprintf(q->url, sizeof q->url, "%s/", s->endpoint);
	if (snap_s3_enc_append(q->url, sizeof q->url, s->bucket, 0) < 0)
		return -ENAMETOOLONG;
	if (name) {
		strncat(q->url, "/", sizeof q->url - strlen(q->url) - 1);
		if (snap_s3_enc_append(q->url, sizeof q->url, s->prefix,
				       1) < 0 ||
		    snap_s3_enc_append(q->url, sizeof q->url, name, 1) < 0)
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

/* Run method on name (or the bucket) with body on handle h, accepting a
 * response body of at most max bytes (0: S3_BODY_MAX); status checked. */
int snap_s3_simple(snap_objstore *o, CURL *h, const char *method,
		   const char *name, const void *body, size_t len,
		   size_t max, s3req *q, snap_err *err)
{
	memset(q, 0, sizeof *q);
	q->max = max;
	q->method = method;
	q->body = body;
	q->len = len;
	if (snap_s3_url(o, name, NULL, q) < 0)
		return snap_err_set(err, -ENAMETOOLONG, "%s: name too long",
				    o->url);
	int rc = snap_s3_run(o, h, q, err);
	if (rc == 0)
		rc = snap_s3_status(o, q, name ? name : "the bucket", err);
	return rc;
}

