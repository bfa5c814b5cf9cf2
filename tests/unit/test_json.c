/*
 * tests/unit/test_json.c — engine/json.h: the writer produces valid JSON
 * (checked by an independent strict parser in testutil.c), escapes every
 * string so it decodes back to the original bytes, puts commas right at
 * every nesting level, knows when a document is whole, merges one
 * object's members into another (snap_json_fields) and reports an
 * allocation failure once, at the end; snap_json_info/snap_json_event
 * carry the contract's field names.  The executable links fault.c (the
 * engine's allocations through --wrap, meson.build) to fail a realloc.
 */
#include "testutil.h"
#include "fault.h"

#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse j's text; fail with the text and the reason when invalid. */
static tu_jv *parse(const snap_json *j)
{
	assert_false(j->oom);
	assert_non_null(j->buf);
	assert_int_equal(strlen(j->buf), j->len);
	const char *why = NULL;
	tu_jv *v = tu_json_parse(j->buf, &why);
	if (v == NULL)
		fail_msg("invalid JSON (%s): %s", why ? why : "?", j->buf);
	return v;
}

/* j's text without whitespace outside strings. */
static char *compact(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	int in = 0;
	for (; *s; s++) {
		if (in) {
			*o++ = *s;
			if (*s == '\\' && s[1])
				*o++ = *++s;
			else if (*s == '"')
				in = 0;
		} else if (*s == '"') {
			in = 1;
			*o++ = *s;
		} else if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r') {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

static void expect_compact(const snap_json *j, const char *want)
{
	char *c = compact(j->buf);
	assert_string_equal(c, want);
	free(c);
}

/* ------------------------------------------------------------------ */

static void test_json_empty_object_and_array(void **state)
{
	(void)state;
	snap_json j;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_obj_end(&j);
	expect_compact(&j, "{}");
	snap_json_free(&j);
	snap_json_init(&j);
	snap_json_arr_begin(&j);
	snap_json_arr_end(&j);
	expect_compact(&j, "[]");
	snap_json_free(&j);
}

static void test_json_nesting_puts_commas_between_members(void **state)
{
	(void)state;
	snap_json j;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "a"); snap_json_int(&j, 1);
	snap_json_key(&j, "b"); snap_json_str(&j, "x");
	snap_json_key(&j, "c"); snap_json_bool(&j, 1);
	snap_json_key(&j, "d"); snap_json_null(&j);
	snap_json_key(&j, "e");
	snap_json_arr_begin(&j);
	snap_json_int(&j, 1);
	snap_json_int(&j, 2);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "f"); snap_json_bool(&j, 0);
	snap_json_obj_end(&j);
	snap_json_arr_begin(&j);
	snap_json_arr_end(&j);
	snap_json_obj_begin(&j);
	snap_json_obj_end(&j);
	snap_json_arr_end(&j);
	snap_json_key(&j, "g");
	snap_json_obj_begin(&j);
	snap_json_key(&j, "h");
	snap_json_arr_begin(&j);
	snap_json_str(&j, "i");
	snap_json_arr_end(&j);
	snap_json_obj_end(&j);
	snap_json_key(&j, "z"); snap_json_int(&j, -5);
	snap_json_obj_end(&j);
	tu_jv *v = parse(&j);
	tu_json_free(v);
	expect_compact(&j, "{\"a\":1,\"b\":\"x\",\"c\":true,\"d\":null,"
			   "\"e\":[1,2,{\"f\":false},[],{}],"
			   "\"g\":{\"h\":[\"i\"]},\"z\":-5}");
	snap_json_free(&j);
}

static void test_json_integers_are_exact(void **state)
{
	(void)state;
	snap_json j;
	snap_json_init(&j);
	snap_json_arr_begin(&j);
	snap_json_int(&j, 0);
	snap_json_int(&j, -1);
	snap_json_int(&j, INT64_MAX);
	snap_json_int(&j, INT64_MIN);
	snap_json_arr_end(&j);
	tu_jv *v = parse(&j);
	tu_json_free(v);
	expect_compact(&j, "[0,-1,9223372036854775807,-9223372036854775808]");
	snap_json_free(&j);
}

/* Write s as a value and as a key; both must decode back to s. */
static void round_trip(const char *s)
{
	snap_json j;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, s);
	snap_json_str(&j, s);
	snap_json_obj_end(&j);
	/* The parser rejects raw control bytes inside strings. */
	tu_jv *v = parse(&j);
	assert_int_equal(v->type, TU_JOBJ);
	assert_int_equal(v->n, 1);
	assert_string_equal(v->keys[0], s);
	assert_int_equal(v->items[0]->type, TU_JSTR);
	assert_int_equal(v->items[0]->slen, strlen(s));
	assert_string_equal(v->items[0]->str, s);
	tu_json_free(v);
	snap_json_free(&j);
}

static void test_json_escapes_quotes_and_backslashes(void **state)
{
	(void)state;
	round_trip("say \"hi\"");
	round_trip("C:\\path\\to\\file");
	round_trip("\\\"");
	round_trip("\"");
	round_trip("\\");
	round_trip("");
	round_trip("a/b</script>");
}

static void test_json_escapes_control_characters(void **state)
{
	(void)state;
	round_trip("line1\nline2\r\n\ttab");
	round_trip("\b\f");
	char all[32];
	for (int i = 1; i < 32; i++)
		all[i - 1] = (char)i;
	all[31] = '\0';
	round_trip(all);
	round_trip("del\x7f");
}

static void test_json_passes_utf8_through(void **state)
{
	(void)state;
	round_trip("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

static void test_json_raw_is_inserted_as_a_value(void **state)
{
	(void)state;
	snap_json j;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "tables");
	snap_json_raw(&j, "{\"t\":3}");
	snap_json_key(&j, "after"); snap_json_int(&j, 1);
	snap_json_obj_end(&j);
	tu_jv *v = parse(&j);
	const tu_jv *t = tu_json_get(tu_json_get(v, "tables"), "t");
	assert_non_null(t);
	assert_string_equal(t->num, "3");
	assert_non_null(tu_json_get(v, "after"));
	tu_json_free(v);
	snap_json_free(&j);
}

static void test_json_grows_for_large_output(void **state)
{
	(void)state;
	snap_json j;
	snap_json_init(&j);
	snap_json_arr_begin(&j);
	for (int i = 0; i < 20000; i++)
		snap_json_str(&j, "0123456789abcdef\"\\");
	snap_json_arr_end(&j);
	tu_jv *v = parse(&j);
	assert_int_equal(v->type, TU_JARR);
	assert_int_equal(v->n, 20000);
	assert_string_equal(v->items[19999]->str, "0123456789abcdef\"\\");
	tu_json_free(v);
	snap_json_free(&j);
	assert_null(j.buf);
}

static snap_info sample_info(void)
{
	snap_info si;
	memset(&si, 0, sizeof(si));
	si.id = 7;
	snprintf(si.name, sizeof(si.name), "2026-11-22T014900Z_before \"x\".db");
	snprintf(si.label, sizeof(si.label), "before-x");
	si.kind = SNAP_KIND_PRE_RESTORE;
	si.created_ns = 1795312140123456789LL;
	snprintf(si.comment, sizeof(si.comment), "line1\nsaid \"no\"\\");
	si.pinned = 1;
	si.page_size = 4096;
	si.page_count = 3;
	si.image_size = 12288;
	for (int i = 0; i < 32; i++)
		si.sha256[i] = (uint8_t)(0xa0 + i);
	return si;
}

/* si's record written into j and parsed back. */
static tu_jv *info_json(snap_json *j, const snap_info *si)
{
	snap_json_init(j);
	snap_json_info(j, si);
	return parse(j);
}

static void test_json_info_has_the_contract_fields(void **state)
{
	(void)state;
	snap_info si = sample_info();
	snap_json j;
	tu_jv *v = info_json(&j, &si);
	assert_int_equal(v->type, TU_JOBJ);
	static const char *fields[] = {
		"name", "label", "kind", "created", "size", "sha256", "pinned",
		"comment",
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (tu_json_get(v, fields[i]) == NULL)
			fail_msg("field %s missing: %s", fields[i], j.buf);
	assert_string_equal(tu_json_get(v, "name")->str, si.name);
	assert_string_equal(tu_json_get(v, "label")->str, "before-x");
	assert_string_equal(tu_json_get(v, "kind")->str, "pre-restore");
	assert_string_equal(tu_json_get(v, "comment")->str, si.comment);
	assert_string_equal(tu_json_get(v, "size")->num, "12288");
	char hex[65];
	snap_hex(si.sha256, hex);
	assert_string_equal(tu_json_get(v, "sha256")->str, hex);
	const tu_jv *pin = tu_json_get(v, "pinned");
	assert_true((pin->type == TU_JBOOL && pin->b == 1) ||
		    (pin->type == TU_JNUM && strcmp(pin->num, "1") == 0));
	const tu_jv *created = tu_json_get(v, "created");
	if (created->type == TU_JSTR) {
		char iso[40];
		snap_time_iso(si.created_ns, iso);
		assert_string_equal(created->str, iso);
	} else {
		assert_int_equal(created->type, TU_JNUM);
	}
	tu_json_free(v);
	snap_json_free(&j);
}

/* "trash": null for a snapshot in snapshots/, where it waits otherwise. */
static void test_json_info_says_where_a_trashed_snapshot_waits(void **state)
{
	(void)state;
	snap_info si = sample_info();
	snap_json j;
	tu_jv *v = info_json(&j, &si);
	assert_non_null(tu_json_get(v, "trash"));
	assert_int_equal(tu_json_get(v, "trash")->type, TU_JNULL);
	tu_json_free(v);
	snap_json_free(&j);

	si.trash = SNAP_TRASH_FILES;
	si.trash_uid = 1000;
	snprintf(si.trash_name, sizeof(si.trash_name), "x.2.db");
	si.trashed_ns = si.created_ns + 1000000000LL;
	v = info_json(&j, &si);
	const tu_jv *t = tu_json_get(v, "trash");
	assert_int_equal(t->type, TU_JOBJ);
	assert_string_equal(tu_json_get(t, "path")->str,
			    ".Trash-1000/files/x.2.db");
	assert_string_equal(tu_json_get(t, "uid")->num, "1000");
	char iso[40];
	snap_time_iso(si.trashed_ns, iso);
	assert_string_equal(tu_json_get(t, "since")->str, iso);
	/* The time for programs: an integer beside the ISO string. */
	char since_ns[32];
	snprintf(since_ns, sizeof(since_ns), "%lld", (long long)si.trashed_ns);
	assert_string_equal(tu_json_get(t, "since_ns")->num, since_ns);
	tu_json_free(v);
	snap_json_free(&j);
}

static void test_json_info_records_in_an_array_are_separated(void **state)
{
	(void)state;
	snap_info a = sample_info(), b = sample_info();
	b.pinned = 0;
	snprintf(b.name, sizeof(b.name), "second.db");
	snap_json j;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "snapshots");
	snap_json_arr_begin(&j);
	snap_json_info(&j, &a);
	snap_json_info(&j, &b);
	snap_json_arr_end(&j);
	snap_json_key(&j, "count");
	snap_json_int(&j, 2);
	snap_json_obj_end(&j);
	tu_jv *v = parse(&j);
	const tu_jv *arr = tu_json_get(v, "snapshots");
	assert_non_null(arr);
	assert_int_equal(arr->n, 2);
	assert_string_equal(tu_json_get(arr->items[1], "name")->str, "second.db");
	const tu_jv *pin = tu_json_get(arr->items[1], "pinned");
	assert_true((pin->type == TU_JBOOL && pin->b == 0) ||
		    (pin->type == TU_JNUM && strcmp(pin->num, "0") == 0));
	assert_string_equal(tu_json_get(v, "count")->num, "2");
	tu_json_free(v);
	snap_json_free(&j);
}

static void test_json_event_carries_kind_snapshot_ok_detail(void **state)
{
	(void)state;
	snap_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.id = 42;
	ev.time_ns = 1795312140000000000LL;
	snprintf(ev.kind, sizeof(ev.kind), "restore");
	snprintf(ev.snapshot, sizeof(ev.snapshot), "a\"b.db");
	ev.ok = 0;
	snprintf(ev.detail, sizeof(ev.detail), "failed:\n\"why\"\t\\");
	snap_json j;
	snap_json_init(&j);
	snap_json_arr_begin(&j);
	snap_json_event(&j, &ev);
	snap_json_event(&j, &ev);
	snap_json_arr_end(&j);
	tu_jv *arr = parse(&j);
	assert_int_equal(arr->n, 2);
	const tu_jv *v = arr->items[0];
	assert_string_equal(tu_json_get(v, "kind")->str, "restore");
	assert_string_equal(tu_json_get(v, "snapshot")->str, "a\"b.db");
	assert_string_equal(tu_json_get(v, "detail")->str, ev.detail);
	assert_string_equal(tu_json_get(v, "time_ns")->num,
			    "1795312140000000000");
	const tu_jv *ok = tu_json_get(v, "ok");
	assert_non_null(ok);
	assert_true((ok->type == TU_JBOOL && ok->b == 0) ||
		    (ok->type == TU_JNUM && strcmp(ok->num, "0") == 0));
	tu_json_free(arr);
	snap_json_free(&j);
}

/* ---- nesting, merging, allocation failure (issue 10) -------------- */

static void test_json_done_only_when_every_level_is_closed(void **state)
{
	(void)state;
	snap_json j;
	snap_json_init(&j);
	assert_false(snap_json_done(&j));
	snap_json_obj_begin(&j);
	snap_json_key(&j, "a");
	snap_json_arr_begin(&j);
	snap_json_obj_begin(&j);
	assert_int_equal(j.depth, 3);
	assert_false(snap_json_done(&j));
	snap_json_obj_end(&j);
	snap_json_arr_end(&j);
	assert_false(snap_json_done(&j));
	snap_json_obj_end(&j);
	assert_int_equal(j.depth, 0);
	assert_true(snap_json_done(&j));
	expect_compact(&j, "{\"a\":[{}]}");
	snap_json_free(&j);
}

/* {"x":1,"s":"a,}b","o":{"p":[1,{}]}}: members with a brace in a string
 * and nested values, to merge. */
static void write_part(snap_json *p)
{
	snap_json_init(p);
	snap_json_obj_begin(p);
	snap_json_key(p, "x"); snap_json_int(p, 1);
	snap_json_key(p, "s"); snap_json_str(p, "a,}b");
	snap_json_key(p, "o");
	snap_json_obj_begin(p);
	snap_json_key(p, "p");
	snap_json_arr_begin(p);
	snap_json_int(p, 1);
	snap_json_obj_begin(p);
	snap_json_obj_end(p);
	snap_json_arr_end(p);
	snap_json_obj_end(p);
	snap_json_obj_end(p);
}

static void test_json_fields_merge_an_object_into_another(void **state)
{
	(void)state;
	snap_json part, j;
	write_part(&part);

	/* First, between other members, and inside a nested object. */
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_fields(&j, &part);
	snap_json_key(&j, "mid"); snap_json_bool(&j, 1);
	snap_json_key(&j, "in");
	snap_json_arr_begin(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "before"); snap_json_null(&j);
	snap_json_fields(&j, &part);
	snap_json_obj_end(&j);
	snap_json_arr_end(&j);
	snap_json_fields(&j, &part);
	snap_json_obj_end(&j);
	assert_true(snap_json_done(&j));
	tu_jv *v = parse(&j);
	tu_json_free(v);
	expect_compact(&j,
		"{\"x\":1,\"s\":\"a,}b\",\"o\":{\"p\":[1,{}]},"
		"\"mid\":true,"
		"\"in\":[{\"before\":null,\"x\":1,\"s\":\"a,}b\","
		"\"o\":{\"p\":[1,{}]}}],"
		"\"x\":1,\"s\":\"a,}b\",\"o\":{\"p\":[1,{}]}}");
	snap_json_free(&j);
	snap_json_free(&part);
}

static void test_json_fields_of_an_empty_object_add_nothing(void **state)
{
	(void)state;
	snap_json e, j;
	snap_json_init(&e);
	snap_json_obj_begin(&e);
	snap_json_obj_end(&e);

	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_fields(&j, &e);
	snap_json_key(&j, "a"); snap_json_int(&j, 1);
	snap_json_fields(&j, &e);
	snap_json_key(&j, "b"); snap_json_int(&j, 2);
	snap_json_obj_end(&j);
	expect_compact(&j, "{\"a\":1,\"b\":2}");
	snap_json_free(&j);
	snap_json_free(&e);
}

static void test_json_fields_refuses_what_is_not_a_finished_object(void **state)
{
	(void)state;
	snap_json arr, open_obj, part, j;

	snap_json_init(&arr);
	snap_json_arr_begin(&arr);
	snap_json_arr_end(&arr);
	snap_json_init(&open_obj);
	snap_json_obj_begin(&open_obj);
	write_part(&part);

	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_fields(&j, &arr);
	assert_true(j.oom);
	assert_false(snap_json_done(&j));
	snap_json_free(&j);

	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_fields(&j, &open_obj);
	assert_true(j.oom);
	snap_json_free(&j);

	/* Nothing open to merge into. */
	snap_json_init(&j);
	snap_json_fields(&j, &part);
	assert_true(j.oom);
	snap_json_free(&j);

	snap_json_free(&arr);
	snap_json_free(&open_obj);
	snap_json_free(&part);
}

static void test_json_a_failed_allocation_is_reported_at_the_end(void **state)
{
	(void)state;
	snap_json j, part;
	char big[600];
	int i;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_part(&part);
	snap_json_init(&j);
	snap_json_obj_begin(&j);          /* the first buffer */
	/* The next growth fails; every later call is a no-op. */
	fault_arm(SNAP_SYS_ALLOC, ENOMEM, 1, 0);
	snap_json_key(&j, "big");
	snap_json_str(&j, big);
	fault_disarm();
	assert_true(j.oom);
	size_t len = j.len;
	for (i = 0; i < 10; i++) {
		snap_json_key(&j, "k");
		snap_json_str(&j, big);
	}
	snap_json_fields(&j, &part);
	snap_json_obj_end(&j);
	assert_true(j.oom);
	assert_false(snap_json_done(&j));
	/* Nothing more was written after the failure. */
	assert_int_equal(j.len, len);
	assert_int_equal(strlen(j.buf), len);

	/* A part that failed makes the merge fail too. */
	snap_json broken;
	snap_json_init(&broken);
	snap_json_obj_begin(&broken);
	snap_json_obj_end(&broken);
	broken.oom = 1;
	snap_json_free(&j);
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_fields(&j, &broken);
	assert_true(j.oom);
	snap_json_free(&j);
	snap_json_free(&broken);
	snap_json_free(&part);
}

int main(void)
{
	fault_install();
	const struct CMUnitTest tests[] = {
		tu_test(test_json_empty_object_and_array),
		tu_test(test_json_nesting_puts_commas_between_members),
		tu_test(test_json_integers_are_exact),
		tu_test(test_json_escapes_quotes_and_backslashes),
		tu_test(test_json_escapes_control_characters),
		tu_test(test_json_passes_utf8_through),
		tu_test(test_json_raw_is_inserted_as_a_value),
		tu_test(test_json_grows_for_large_output),
		tu_test(test_json_info_has_the_contract_fields),
		tu_test(test_json_info_says_where_a_trashed_snapshot_waits),
		tu_test(test_json_info_records_in_an_array_are_separated),
		tu_test(test_json_event_carries_kind_snapshot_ok_detail),
		tu_test(test_json_done_only_when_every_level_is_closed),
		tu_test(test_json_fields_merge_an_object_into_another),
		tu_test(test_json_fields_of_an_empty_object_add_nothing),
		tu_test(test_json_fields_refuses_what_is_not_a_finished_object),
		tu_test(test_json_a_failed_allocation_is_reported_at_the_end),
	};
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
