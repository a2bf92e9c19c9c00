/*
 * The decoders on malformed input: each kind of damage must fail with its
 * specific code and a message that names what is wrong and where, and leave
 * the output empty.
 */
#include <criterion/criterion.h>
#include <sodium.h>

#include "test_codec_gen.h"

static bool all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i])
      return false;
  return true;
}

#define EXPECT_DOC(bytes, len, code, text)                                                         \
  do {                                                                                             \
    cs_doc out_;                                                                                   \
    memset(&out_, 0xab, sizeof(out_));                                                             \
    int rc_ = cs__codec_decode_doc(&out_, (bytes), (len));                                         \
    cr_expect_eq(rc_, (code), "rc %d, message: %s", rc_, cs_errmsg());                             \
    cr_expect(strstr(cs_errmsg(), (text)) != NULL, "message '%s' lacks '%s'", cs_errmsg(),         \
              (text));                                                                             \
    cr_expect(all_zero(&out_, sizeof(out_)), "output not left empty");                             \
  } while (0)

#define EXPECT_MSG(bytes, len, code, text)                                                         \
  do {                                                                                             \
    cs_sync_msg out_;                                                                              \
    memset(&out_, 0xab, sizeof(out_));                                                             \
    int rc_ = cs__codec_decode_msg(&out_, (bytes), (len));                                         \
    cr_expect_eq(rc_, (code), "rc %d, message: %s", rc_, cs_errmsg());                             \
    cr_expect(strstr(cs_errmsg(), (text)) != NULL, "message '%s' lacks '%s'", cs_errmsg(),         \
              (text));                                                                             \
    cr_expect(all_zero(&out_, sizeof(out_)), "output not left empty");                             \
  } while (0)

/* A message body plus its BLAKE2b-128 trailer, in buf; returns the length. */
static size_t seal(uint8_t *buf, const uint8_t *body, size_t len) {
  memcpy(buf, body, len);
  crypto_generichash(buf + len, 16, body, len, NULL, 0);
  return len + 16;
}

/* A valid document: one register field "a" with one entry (replica 7, dot 1). */
static const uint8_t doc_ok[] = {1,    16,   0x01, 0x07, 0x01, 0xa1, 'a', 0x00,
                                 0x01, 0x01, 0x01, 0x00, 0x01, 0x00, 0x05};
#define DOC_FIELD_HEAD 9 /* offset of the field head (index << 2 | kind) */
#define DOC_COUNTER 12   /* offset of the entry's dot counter */
#define DOC_VALUE 14     /* offset of the value */

/* A valid sync message: model "UserProfile", instance "p1", one action of
 * replica 7 writing field "name" := 5 (the one-byte short form). */
static const uint8_t msg_ok[] = {
    1,    1,    0x07, 0x00, 0x00, 0x00, /* header: sender, clock, cursor, flags */
    0x01, 0x07,                         /* replica table */
    0x01, 0xa4, 'n',  'a',  'm',  'e',  /* field table */
    0x01,                               /* one model */
    0xab, 'U',  's',  'e',  'r',  'P',  'r', 'o', 'f', 'i', 'l', 'e', /* its name */
    0x00,                                                             /* knowledge: empty */
    0x01, 0xa2, 'p',  '1',                                            /* instance table */
    0x01, 0x00, 0x01,             /* one group: origin 0, one action */
    0x00, 0x00, 0x00, 0x05, 0x00, /* instance, tag, stamp, value, covered */
    0x00                          /* no states */
};
#define MSG_INST_TABLE 28
#define MSG_TAG 36
#define MSG_STAMP 37
#define MSG_COVERED 39

Test(codec_bad, baselines_decode) {
  cs_doc d;
  cs_sync_msg m;
  uint8_t buf[256];
  size_t n = seal(buf, msg_ok, sizeof(msg_ok));
  cr_assert_eq(cs__codec_decode_doc(&d, doc_ok, sizeof(doc_ok)), 0, "%s", cs_errmsg());
  cr_assert_eq(d.nfields, 1);
  cr_assert_eq(d.fields[0].u.reg.entries[0].dot.counter, 1);
  cs__doc_dispose(&d);
  cr_assert_eq(cs__codec_decode_msg(&m, buf, n), 0, "%s", cs_errmsg());
  cr_assert_eq(m.models[0].nactions, 1);
  cr_assert_str_eq(m.models[0].actions[0].doc.fields[0].name, "name");
  cr_assert(cs__dotset_contains(&m.models[0].actions[0].ctx, (cs_dot){7, 1}));
  cs__sync_msg_dispose(&m);
}

Test(codec_bad, truncated_at_every_offset) {
  uint64_t seed = gen_seed();
  gen_rng r = {seed};
  cs_sync_msg m;
  cs_buf b = CS_BUF_INIT;
  uint8_t *sealed;
  /* A message with some content, so that every kind of item gets cut. */
  do {
    cs_buf_dispose(&b);
    gen_msg(&r, &m);
    cr_assert_eq(cs__codec_encode_msg(&b, &m), 0);
    cs__sync_msg_dispose(&m);
  } while (b.size < 200);
  for (size_t cut = 0; cut < b.size; cut++) /* the checksum no longer matches */
    EXPECT_MSG((const uint8_t *)b.ptr, cut, CS_ECORRUPT, cut < 18 ? "offset" : "checksum mismatch");
  /* Resealed prefixes reach the body parser: each must say where it ran out. */
  sealed = malloc(b.size + 16);
  for (size_t cut = 2; cut < b.size - 16; cut++) {
    size_t n = seal(sealed, (const uint8_t *)b.ptr, cut);
    EXPECT_MSG(sealed, n, CS_ECORRUPT, "truncated");
  }
  free(sealed);
  for (size_t cut = 0; cut < sizeof(doc_ok); cut++)
    EXPECT_DOC(doc_ok, cut, CS_ECORRUPT, "truncated");
  cs_buf_dispose(&b);
}

Test(codec_bad, wrong_type) {
  const uint8_t bad[] = {1, 16, 0xa1, 'x'};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT,
             "replica table: expected unsigned integer, found string (0xa1) at offset 2");
}

Test(codec_bad, huge_map32_claim) {
  const uint8_t bad[] = {1, 16, 0xdf, 0x01, 0x00, 0x00, 0x00};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "expected unsigned integer, found map (0xdf)");
}

Test(codec_bad, nested_map_claims) {
  const uint8_t bad[] = {1, 16, 0x8d, 0xdf, 0xff, 0x8d, 0xff, 0xff};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "found map (0x8d) at offset 2");
}

Test(codec_bad, huge_count) {
  const uint8_t bad[] = {1, 16, 0xce, 0x7f, 0xff, 0xff, 0xff, 0x00};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT,
             "replica table: count 2147483647 exceeds what the remaining 1 bytes can hold");
}

Test(codec_bad, huge_string_claim) {
  uint8_t bad[sizeof(doc_ok) + 4];
  memcpy(bad, doc_ok, sizeof(doc_ok));
  /* value: str32 claiming 2^31 bytes */
  bad[DOC_VALUE] = 0xdb;
  bad[DOC_VALUE + 1] = 0x80;
  bad[DOC_VALUE + 2] = bad[DOC_VALUE + 3] = bad[DOC_VALUE + 4] = 0;
  EXPECT_DOC(bad, DOC_VALUE + 5, CS_ECORRUPT, "exceed the limit of 1048576 at offset 14");
}

Test(codec_bad, field_index_out_of_range) {
  uint8_t bad[sizeof(doc_ok)];
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[DOC_FIELD_HEAD] = 5 << 2 | 1;
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "field index 5 out of range (table has 1) at offset 9");
}

Test(codec_bad, field_index_in_message_names_model_and_action) {
  uint8_t body[sizeof(msg_ok)], buf[256];
  memcpy(body, msg_ok, sizeof(msg_ok));
  body[MSG_TAG] = 9 << 3;
  EXPECT_MSG(
      buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
      "model 'UserProfile', action 0: field index 9 out of range (table has 1) at offset 36");
}

Test(codec_bad, replica_index_out_of_range) {
  uint8_t bad[sizeof(doc_ok)];
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[DOC_COUNTER - 1] = 3;
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "replica index 3 out of range (table has 1)");
}

Test(codec_bad, instance_index_out_of_range) {
  uint8_t body[sizeof(msg_ok)], buf[256];
  memcpy(body, msg_ok, sizeof(msg_ok));
  body[MSG_TAG - 1] = 2;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "action 0: instance index 2 out of range (table has 1) at offset 35");
}

Test(codec_bad, bad_checksum) {
  uint8_t buf[256];
  size_t n = seal(buf, msg_ok, sizeof(msg_ok));
  buf[MSG_TAG + 2] ^= 1;
  EXPECT_MSG(buf, n, CS_ECORRUPT, "checksum mismatch at offset 41");
  n = seal(buf, msg_ok, sizeof(msg_ok));
  buf[n - 1] ^= 0x80;
  EXPECT_MSG(buf, n, CS_ECORRUPT, "checksum mismatch");
}

Test(codec_bad, wrong_version) {
  uint8_t body[sizeof(msg_ok)], buf[256];
  memcpy(body, msg_ok, sizeof(msg_ok));
  body[0] = 2;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_EVERSION, "wire version 2");
  EXPECT_DOC((const uint8_t *)"\x00\x10\x00\x00", 4, CS_EVERSION, "wire version 0");
}

Test(codec_bad, deep_nesting) {
  uint8_t bad[sizeof(doc_ok) + 200];
  memcpy(bad, doc_ok, DOC_VALUE);
  memset(bad + DOC_VALUE, 0x91, 200); /* [[[[...]]]] where a scalar belongs */
  EXPECT_DOC(bad, DOC_VALUE + 200, CS_ECORRUPT,
             "register value: bad value type array (0x91) at offset 14");
}

Test(codec_bad, unsorted_fields) {
  /* fields "a" and "b", written b then a */
  const uint8_t bad[] = {1,   16,   0x00, 0x02, 0xa1, 'a',  0xa1,
                         'b', 0x00, 0x02, 0x05, 0x00, 0x01, 0x00};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "field 'a': fields unsorted or duplicate at offset 12");
}

Test(codec_bad, unsorted_field_table) {
  const uint8_t bad[] = {1, 16, 0x00, 0x02, 0xa1, 'b', 0xa1, 'a', 0x00, 0x00};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "field table: 'a' not after 'b'");
}

Test(codec_bad, duplicate_set_elements) {
  /* set field "s": elements 3 and 3, each with dot (replica 7, 1) */
  const uint8_t bad[] = {1,    16,   0x01, 0x07, 0x01, 0xa1, 's',  0x00, 0x01, 0x02,
                         0x02, 0x03, 0x01, 0x00, 0x01, 0x03, 0x01, 0x00, 0x00};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "field 's': set elements unsorted or duplicate");
}

Test(codec_bad, duplicate_replica_in_table) {
  const uint8_t bad[] = {1, 18, 0x02, 0x05, 0x05, 0x00};
  cs_dotset out;
  cr_expect_eq(cs__codec_decode_dotset(&out, bad, sizeof(bad)), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "replica table: id 0000000000000005 not above"), "%s", cs_errmsg());
}

Test(codec_bad, zero_counter) {
  uint8_t bad[sizeof(doc_ok)];
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[DOC_COUNTER] = 0;
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "dot counter 0 (counters start at 1)");
}

Test(codec_bad, trailing_bytes) {
  uint8_t bad[sizeof(doc_ok) + 2];
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[sizeof(doc_ok)] = bad[sizeof(doc_ok) + 1] = 0;
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "2 trailing bytes at offset 15");
}

Test(codec_bad, over_long_name) {
  uint8_t bad[1100] = {1, 16, 0x00, 0x01, 0xda, 0x04, 0x01}; /* str16 of 1025 bytes */
  memset(bad + 7, 'f', 1025);
  bad[1032] = 0x00;
  bad[1033] = 0x00;
  EXPECT_DOC(bad, 1034, CS_ECORRUPT, "field name: 1025 bytes exceed the limit of 1024 at offset 4");
}

Test(codec_bad, name_with_a_nul_byte) {
  uint8_t bad[sizeof(doc_ok)], buf[256], body[sizeof(msg_ok)],
      longer[64] = {1, 16, 0x00, 0x01, 0xd9, 40};
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[6] = 0x00; /* field "a" -> "\0" */
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "field name: name contains a NUL byte at offset 5");
  /* A str8 name (32 bytes or more) with a NUL inside. */
  memset(longer + 6, 'f', 40);
  longer[20] = 0x00;
  EXPECT_DOC(longer, sizeof(longer), CS_ECORRUPT,
             "field name: name contains a NUL byte at offset 4");
  memcpy(body, msg_ok, sizeof(msg_ok));
  body[MSG_INST_TABLE + 3] = 0x00; /* instance "p1" -> "p\0" */
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT, "contains a NUL byte");
}

Test(codec_bad, bad_value_type) {
  uint8_t bad[sizeof(doc_ok) + 1];
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[DOC_VALUE] = 0xd4; /* fixext 1 */
  bad[DOC_VALUE + 1] = 0;
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "bad value type extension (0xd4)");
  bad[DOC_VALUE] = 0xc1;
  EXPECT_DOC(bad, sizeof(doc_ok), CS_ECORRUPT, "bad value type reserved byte 0xc1");
}

Test(codec_bad, non_shortest_integers) {
  uint8_t bad[sizeof(doc_ok) + 2];
  const uint8_t count[] = {1, 16, 0xcc, 0x01, 0x07};
  EXPECT_DOC(count, sizeof(count), CS_ECORRUPT, "integer 1 not in its shortest encoding");
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[DOC_VALUE] = 0xd0; /* int8 5 */
  bad[DOC_VALUE + 1] = 0x05;
  EXPECT_DOC(bad, DOC_VALUE + 2, CS_ECORRUPT, "integer 5 not in its shortest encoding");
  bad[DOC_VALUE] = 0xca; /* float32: doubles are always float64 */
  EXPECT_DOC(bad, DOC_VALUE + 2, CS_ECORRUPT, "bad value type float");
}

/* Lengths too: a name or a binary value in a longer form than its length
 * needs decodes to what the short form does, so only the short form is
 * canonical. */
Test(codec_bad, non_shortest_lengths) {
  uint8_t bad[sizeof(doc_ok) + 4];
  size_t n = 5;
  memcpy(bad, doc_ok, n); /* up to the field name "a", a fixstr */
  bad[n++] = 0xd9;        /* str8 of length 1 */
  bad[n++] = 0x01;
  bad[n++] = 'a';
  memcpy(bad + n, doc_ok + 7, sizeof(doc_ok) - 7);
  n += sizeof(doc_ok) - 7;
  EXPECT_DOC(bad, n, CS_ECORRUPT, "length 1 not in its shortest encoding");
  memcpy(bad, doc_ok, DOC_VALUE);
  bad[DOC_VALUE] = 0xc5; /* bin16 of length 1 */
  bad[DOC_VALUE + 1] = 0x00;
  bad[DOC_VALUE + 2] = 0x01;
  bad[DOC_VALUE + 3] = 'z';
  EXPECT_DOC(bad, DOC_VALUE + 4, CS_ECORRUPT, "length 1 not in its shortest encoding");
  bad[DOC_VALUE] = 0xc4; /* bin8 of length 1: the shortest binary form */
  bad[DOC_VALUE + 1] = 0x01;
  bad[DOC_VALUE + 2] = 'z';
  cs_doc d;
  cr_expect_eq(cs__codec_decode_doc(&d, bad, DOC_VALUE + 3), 0, "%s", cs_errmsg());
  cs__doc_dispose(&d);
}

Test(codec_bad, bad_kind) {
  uint8_t bad[sizeof(doc_ok)];
  memcpy(bad, doc_ok, sizeof(doc_ok));
  bad[DOC_FIELD_HEAD] = 0 << 2 | 0;
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT, "field 'a': bad kind 0 at offset 9");
}

Test(codec_bad, unused_table_entry) {
  const uint8_t bad[] = {1, 16, 0x01, 0x00, 0x00, 0x00, 0x00};
  EXPECT_DOC(bad, sizeof(bad), CS_ECORRUPT,
             "replica table entry 0 (0000000000000000) is never used");
}

Test(codec_bad, wrong_frame_kind) {
  cs_dotset out;
  cr_expect_eq(cs__codec_decode_dotset(&out, doc_ok, sizeof(doc_ok)), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "dot set: frame kind 16, expected 18 at offset 1"), "%s",
            cs_errmsg());
}

Test(codec_bad, empty_and_oversized_input) {
  static const uint8_t tiny[4] = {1, 16, 0, 0};
  EXPECT_DOC(tiny, 0, CS_ECORRUPT, "has no header");
  EXPECT_MSG(tiny, 3, CS_ECORRUPT, "has no checksum");
  /* The length alone is refused: nothing past it is read. */
  EXPECT_DOC(tiny, (size_t)CS_WIRE_MAX_MESSAGE + 1, CS_ECORRUPT, "exceeds the limit of 67108864");
}

Test(codec_bad, unknown_message_type_and_flags) {
  uint8_t body[sizeof(msg_ok)], buf[256];
  memcpy(body, msg_ok, sizeof(msg_ok));
  body[1] = 9;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT, "unknown message type 9 at offset 1");
  memcpy(body, msg_ok, sizeof(msg_ok));
  body[5] = 0x06;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "flags: unknown bits 0x6 at offset 5");
}

Test(codec_bad, duplicate_instance_names) {
  uint8_t body[sizeof(msg_ok) + 3], buf[256];
  /* instance table ["p1", "p1"] */
  memcpy(body, msg_ok, MSG_INST_TABLE);
  body[MSG_INST_TABLE] = 0x02;
  memcpy(body + MSG_INST_TABLE + 1, "\xa2p1\xa2p1", 6);
  memcpy(body + MSG_INST_TABLE + 7, msg_ok + MSG_INST_TABLE + 4,
         sizeof(msg_ok) - MSG_INST_TABLE - 4);
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "model 'UserProfile': instance table: duplicate name 'p1'");
}

/* A duplicate far from its twin in a large table is found as well. */
Test(codec_bad, duplicate_instance_names_apart) {
  enum { N = 300 };
  static uint8_t body[sizeof(msg_ok) + 3 + 6 * N], buf[sizeof(body) + 16];
  size_t at = MSG_INST_TABLE;
  memcpy(body, msg_ok, MSG_INST_TABLE);
  body[at++] = 0xcd; /* N + 1 names: p0 .. p299, then p5 again */
  body[at++] = (uint8_t)((N + 1) >> 8);
  body[at++] = (uint8_t)(N + 1);
  for (int i = 0; i <= N; i++) {
    char name[8];
    int len = snprintf(name, sizeof(name), "p%d", i < N ? i : 5);
    body[at++] = (uint8_t)(0xa0 | len);
    memcpy(body + at, name, (size_t)len);
    at += (size_t)len;
  }
  memcpy(body + at, msg_ok + MSG_INST_TABLE + 4, sizeof(msg_ok) - MSG_INST_TABLE - 4);
  at += sizeof(msg_ok) - MSG_INST_TABLE - 4;
  EXPECT_MSG(buf, seal(buf, body, at), CS_ECORRUPT,
             "model 'UserProfile': instance table: duplicate name 'p5'");
}

Test(codec_bad, covered_dot_repeats_own_dot) {
  uint8_t body[sizeof(msg_ok) + 1], buf[256];
  memcpy(body, msg_ok, sizeof(msg_ok));
  /* covered: a list of one single dot, replica index 0, counter 1 (the
   * action's own): item = (counter * 1 replica + index 0) << 1 | 0 = 2 */
  body[MSG_COVERED] = 0x01;
  body[MSG_COVERED + 1] = 0x02;
  body[MSG_COVERED + 2] = 0x00;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "covered dot 1 repeats one of the action's own dots at offset 40");
  /* the same list form for a dot that is not the action's own: the short
   * form (tag code 1, the item alone) is the only canonical one */
  body[MSG_COVERED + 1] = 0x04;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "one covered dot written as a list where the tag has a short form");
}

Test(codec_bad, bad_stamp_mode) {
  uint8_t body[sizeof(msg_ok)], buf[256];
  memcpy(body, msg_ok, sizeof(msg_ok));
  body[MSG_STAMP] = 0x03;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT, "action stamp: bad stamp mode 3");
  body[MSG_STAMP] = 0x01; /* new millisecond with a zero change */
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT, "zero millisecond change");
}

Test(codec_bad, long_form_where_short_form_exists) {
  uint8_t body[sizeof(msg_ok) + 1], buf[256];
  /* tag GENERAL with an empty document (that is the EMPTY shape) */
  memcpy(body, msg_ok, MSG_TAG);
  body[MSG_TAG] = 0x06;
  body[MSG_TAG + 1] = 0x00; /* stamp */
  body[MSG_TAG + 2] = 0x00; /* no existence entries */
  body[MSG_TAG + 3] = 0x00; /* no fields */
  body[MSG_TAG + 4] = 0x00; /* covered */
  body[MSG_TAG + 5] = 0x00; /* states */
  EXPECT_MSG(buf, seal(buf, body, MSG_TAG + 6), CS_ECORRUPT,
             "written in full where a short form exists");
}

Test(codec_bad, empty_action_group) {
  uint8_t body[sizeof(msg_ok)], buf[256];
  memset(body, 0, sizeof(body));
  memcpy(body, msg_ok, MSG_TAG - 2);
  body[MSG_TAG - 2] = 0x00; /* the group claims no actions */
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "action group of origin index 0 is empty at offset 34");
}

Test(codec_bad, dotset_entry_without_dots) {
  const uint8_t bad[] = {1, 18, 0x01, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00};
  cs_dotset out;
  memset(&out, 0xab, sizeof(out));
  cr_expect_eq(cs__codec_decode_dotset(&out, bad, sizeof(bad)), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "entry of replica index 0 holds no dots at offset 8"), "%s",
            cs_errmsg());
  cr_expect(all_zero(&out, sizeof(out)));
}

/* Bytes that only look like an action log entry. */
Test(codec_bad, action_errors_leave_no_instance) {
  cs_wire_action a;
  char *inst = (char *)"sentinel";
  const uint8_t bad[] = {1, 17, 0x01, 0x07, 0x00, 0xa2, 'p', '1', 0x05};
  cr_expect_eq(cs__codec_decode_action(&a, &inst, bad, sizeof(bad)), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "action origin: replica index 5 out of range"), "%s", cs_errmsg());
  cr_expect_null(inst);
  cr_expect(all_zero(&a, sizeof(a)));
}

Test(codec_bad, bad_instance_reference) {
  uint8_t body[sizeof(msg_ok) + 2], buf[256];
  /* the instance item (offset 35) replaced by a pair whose low part is 200 */
  memcpy(body, msg_ok, 35);
  body[35] = 0x40;
  body[36] = 0xcc;
  body[37] = 200;
  memcpy(body + 38, msg_ok + 36, sizeof(msg_ok) - 36);
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "action 0: instance reference: low part 200 above 127 at offset 36");
  /* a lead item above the escape */
  body[35] = 0xcc;
  body[36] = 0x80;
  body[37] = 0x00;
  EXPECT_MSG(buf, seal(buf, body, sizeof(body)), CS_ECORRUPT,
             "instance reference: bad lead item 128 at offset 35");
}

/* A few bytes must not make the decoder materialise a huge range of dots. */
Test(codec_bad, dot_range_beyond_what_the_bytes_carry) {
  cs_wire_action a;
  char *inst = NULL;
  /* action of replica 7, range prefix: gap 0, extent 65535, empty shape */
  const uint8_t bad[] = {1,    17,   0x01, 0x07, 0x00, 0xa1, 'p',  0x00,
                         0x07, 0x00, 0xcd, 0xff, 0xff, 0x04, 0x00, 0x00};
  cr_expect_eq(cs__codec_decode_action(&a, &inst, bad, sizeof(bad)), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "actions claim more dots than a message of 16 bytes can carry"),
            "%s", cs_errmsg());
  cr_expect_null(inst);
}
