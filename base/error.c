/* The error table, and this thread's last error with its message. */
#include <stdio.h>

#include "base/base.h"

#define CS__ERRMSG_MAX 512

static _Thread_local int last_code;
static _Thread_local char last_msg[CS__ERRMSG_MAX];

const char *cs_strerror(int code) {
  switch (code) {
  case CS_OK:
    return "success";
#define CS__ERRNO_TEXT(name, value, text)                                      \
  case value:                                                                  \
    return text;
    CS_ERRNO_MAP(CS__ERRNO_TEXT)
#undef CS__ERRNO_TEXT
  default:
    return "unknown error";
  }
}

const char *cs_errmsg(void) { return last_msg; }

int cs_errcode(void) { return last_code; }

void cs_error_clear(void) {
  last_code = 0;
  last_msg[0] = '\0';
}

int cs__error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
  va_end(ap);
  last_code = code;
  return code;
}

int cs__error_wrap(int code, const char *fmt, ...) {
  char prefix[CS__ERRMSG_MAX];
  char old[CS__ERRMSG_MAX];
  va_list ap;

  memcpy(old, last_msg, sizeof(old));
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof(prefix), fmt, ap);
  va_end(ap);
  if (old[0] == '\0')
    snprintf(last_msg, sizeof(last_msg), "%s%s", prefix, cs_strerror(code));
  else
    snprintf(last_msg, sizeof(last_msg), "%s%s", prefix, old);
  last_code = code;
  return code;
}
