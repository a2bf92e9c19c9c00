/*
 * Private to crdt/: helpers shared by the files of the CRDT core. Not for
 * other layers (they use crdt/crdt.h).
 */
#ifndef CS_CRDT_INT_H
#define CS_CRDT_INT_H

#include "crdt/crdt.h"

/* Frees what a field owns (name included). */
void cs__field_dispose(cs_field *f);
/* Deep copy of a field into uninitialised dst; 0 or CS_ENOMEM (dst then
 * holds nothing to free). */
int cs__field_copy(cs_field *dst, const cs_field *src);
/* Index of the first field whose name is >= name (insertion point). */
size_t cs__doc_field_lower(const cs_doc *doc, const char *name);
/* Inserts an empty field of `kind` at its sorted place; returns it through
 * out. The name is copied. */
int cs__doc_field_insert(cs_field **out, cs_doc *doc, const char *name, uint8_t kind);
/* Removes the field at index i (disposing it). */
void cs__doc_field_remove(cs_doc *doc, size_t i);
/* true when the field holds no entry (register/set empty, counter empty). */
static inline bool cs__field_is_empty(const cs_field *f) {
  switch (f->kind) {
  case CS_KIND_REG:
    return f->u.reg.len == 0;
  case CS_KIND_SET:
    return f->u.set.len == 0;
  case CS_KIND_CTR:
    return f->u.ctr.len == 0;
  default:
    return true;
  }
}
void cs__exist_entry_dispose(cs_exist_entry *e);
int cs__exist_entry_copy(cs_exist_entry *dst, const cs_exist_entry *src);

/* ---- setindex.c: which element of a large set holds a dot ---- */

/* Sets smaller than this are searched by walking them (256; tests move it
 * to run the same joins both ways). */
extern size_t cs__set_index_min;

/* Builds s->index over every dot of s (replacing any). 0 or CS_ENOMEM. */
int cs__set_index_build(cs_set *s);
/* Records that element `val` holds dot d (the index keeps its own copy of
 * the value). A failure drops the index: it is only ever a shortcut. */
void cs__set_index_add(cs_set *s, cs_dot d, const cs_val *val);
/* The position of the element that holds d, or s->len when none does.
 * Exact when every dot added to s since the index was built went through
 * cs__set_index_add: a dot, once gone from a set, never returns to it. */
size_t cs__set_index_find(const cs_set *s, cs_dot d);
void cs__set_index_free(cs_set *s);

#endif /* CS_CRDT_INT_H */
