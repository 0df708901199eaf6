// Stand-in for <os/log.h>, for the syntax check only. os_log takes a log
// object and a format that must be a string literal (the real macro builds
// the message at compile time with __builtin_os_log_format); the `""`
// prefix below rejects anything else. The format and its arguments are not
// checked against each other: os_log's %{public}s is no printf format.
#pragma once

struct os_log_s;
typedef struct os_log_s *os_log_t;
extern struct os_log_s _os_log_default;
#define OS_LOG_DEFAULT (&_os_log_default)

void unimem_syntax_os_log(os_log_t log, const char *format, ...);
#define os_log(log, format, ...) unimem_syntax_os_log(log, "" format, ##__VA_ARGS__)
#define os_log_error(log, format, ...) unimem_syntax_os_log(log, "" format, ##__VA_ARGS__)
