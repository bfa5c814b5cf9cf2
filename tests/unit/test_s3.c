/*
 * tests/unit/test_s3.c — the s3:// client's handling of what a server
 * sends, without a network (engine/s3http.h, engine/objstore_s3.c): XML
 * documents with a DTD refused, text copied out of them bounded; prefixes
 * whose keys a listing would not find refused at open; an endpoint with
 * credentials in it refused without repeating them.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3http.h"

/* An error document whose Code is one entity referenced n times. */
static char *entity_doc(size_t entlen, size_t n)
{
	size_t cap = entlen + 4 * n + 256;
	char *doc = malloc(cap);
	assert_non_null(doc);
	int k = snprintf(doc, cap, "<?xml version=\"1.0\"?>\n<!DOCTYPE Error "
			 "[<!ENTITY b \"");
	memset(doc + k, 'A', entlen);
	k += (int)entlen;
	k += snprintf(doc + k, cap - (size_t)k, "\">]>\n<Error><Code>");
	for (size_t i = 0; i < n; i++)
		k += snprintf(doc + k, cap - (size_t)k, "&b;");
	snprintf(doc + k, cap - (size_t)k, "</Code><Message>m</Message>"
		 "</Error>");
	return doc;
}

static void test_xml_with_an_entity_bomb_is_refused(void **state)
{
	(void)state;
	snap_s3_init();
	char *doc = entity_doc(1000, 100);
	char *code = snap_s3_xml_first((const uint8_t *)doc, strlen(doc),
				       "Code", S3_TEXT_MAX);
	assert_null(code);
	assert_null(snap_s3_xml_read((const uint8_t *)doc, strlen(doc)));
	free(doc);
}

static void test_xml_with_any_dtd_is_refused(void **state)
{
	(void)state;
	snap_s3_init();
	const char *doc = "<?xml version=\"1.0\"?><!DOCTYPE Error>"
			  "<Error><Code>SlowDown</Code></Error>";
	assert_null(snap_s3_xml_first((const uint8_t *)doc, strlen(doc),
				      "Code", S3_TEXT_MAX));
}

static void test_xml_text_is_cut_and_kept_on_one_line(void **state)
{
	(void)state;
	snap_s3_init();
	enum { n = 10000 };
	static char doc[n + 100];
	int k = sprintf(doc, "<Error><Code>Bad\nLine\r\tX</Code><Message>");
	memset(doc + k, 'M', n);
	strcpy(doc + k + n, "</Message></Error>");
	char *code = snap_s3_xml_first((const uint8_t *)doc, strlen(doc),
				       "Code", S3_TEXT_MAX);
	char *msg = snap_s3_xml_first((const uint8_t *)doc, strlen(doc),
				      "Message", S3_TEXT_MAX);
	assert_string_equal(code, "Bad Line  X");
	assert_non_null(msg);
	assert_int_equal(strlen(msg), S3_TEXT_MAX - 1);
	free(code);
	free(msg);
}

static void test_xml_text_cut_keeps_whole_characters(void **state)
{
	(void)state;
	snap_s3_init();
	/* "é" (2 bytes) repeated: a cut at an odd byte drops the half. */
	char doc[2048] = "<Error><Message>";
	for (int i = 0; i < 300; i++)
		strcat(doc, "\xc3\xa9");
	strcat(doc, "</Message></Error>");
	char *msg = snap_s3_xml_first((const uint8_t *)doc, strlen(doc),
				      "Message", 8);
	assert_string_equal(msg, "\xc3\xa9\xc3\xa9\xc3\xa9");
	free(msg);
}

/* Open url with no credentials: what the prefix check says first. */
static int open_rc(const char *url, snap_err *e)
{
	snap_objstore *o = NULL;
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	int rc = snap_objstore_open(url, 0, &o, e);
	snap_objstore_close(o);
	return rc;
}

static void test_prefix_with_dot_segments_is_refused(void **state)
{
	(void)state;
	static const char *bad[] = {
		"s3://b/dot/../y", "s3://b/../y", "s3://b/x/.", "s3://b/./x",
		"s3://b/a//b", "s3://b//a", "s3://b/..",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snap_err e = {0};
		assert_int_equal(open_rc(bad[i], &e), -EINVAL);
		assert_non_null(strstr(e.msg, "prefix"));
	}
	/* Dots inside a name, and a trailing slash, are fine (no
	 * credentials is what stops these). */
	snap_err e = {0};
	assert_int_equal(open_rc("s3://b/a.b/..c/x../", &e), -EACCES);
	assert_int_equal(open_rc("s3://b", &e), -EACCES);
}

static void test_prefix_too_long_is_refused(void **state)
{
	(void)state;
	char url[2048] = "s3://b/";
	size_t n = strlen(url);
	memset(url + n, 'p', S3_PREFIX_MAX + 1);
	url[n + S3_PREFIX_MAX + 1] = '\0';
	snap_err e = {0};
	assert_int_equal(open_rc(url, &e), -ENAMETOOLONG);
	url[n + S3_PREFIX_MAX] = '\0';
	assert_int_equal(open_rc(url, &e), -EACCES);
}

/* An endpoint with credentials in its user part is refused before any
 * request, and the message does not repeat them (they would reach the
 * event history and the daemon's log). */
static void test_endpoint_with_user_info_is_refused_unrepeated(void **state)
{
	(void)state;
	static const char *bad[] = {
		"http://AKIAX:s3cr3tvalue@127.0.0.1:1",
		"https://s3cr3tvalue@s3.example.com/",
		"http://a%3Ab:s3cr3tvalue@h",
	};
	setenv("AWS_ACCESS_KEY_ID", "k", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snap_objstore *o = NULL;
		snap_err e = {0};
		setenv("AWS_ENDPOINT_URL", bad[i], 1);
		assert_int_equal(snap_objstore_open("s3://b/p", 0, &o, &e),
				 -EINVAL);
		snap_objstore_close(o);
		assert_null(strstr(e.msg, "s3cr3tvalue"));
		assert_non_null(strstr(e.msg, "user information"));
	}
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_xml_with_an_entity_bomb_is_refused),
		tu_test(test_xml_with_any_dtd_is_refused),
		tu_test(test_xml_text_is_cut_and_kept_on_one_line),
		tu_test(test_xml_text_cut_keeps_whole_characters),
		tu_test(test_prefix_with_dot_segments_is_refused),
		tu_test(test_prefix_too_long_is_refused),
		tu_test(test_endpoint_with_user_info_is_refused_unrepeated),
	};
	return cmocka_run_group_tests_name("s3", tests, NULL, NULL);
}
