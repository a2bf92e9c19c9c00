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
bool cs__field_is_empty(const cs_field *f);
void cs__exist_entry_dispose(cs_exist_entry *e);
int cs__exist_entry_copy(cs_exist_entry *dst, const cs_exist_entry *src);

#endif /* CS_CRDT_INT_H */
