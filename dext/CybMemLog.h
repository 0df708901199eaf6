// CybMemLog.h -- the DEXT's version and its os_log helpers. Every line
// carries the "CybMemDriver <version>" prefix so `log stream` can select
// them (DEVELOPMENT.md); IOReturn values print as 0x%x.
#pragma once

#include <os/log.h>

#define CYBMEM_VERSION "0.1.0"
#define CYBMEM_SERVER_VERSION "CybMemDriver " CYBMEM_VERSION

#define CYBMEM_LOG(fmt, ...) \
    os_log(OS_LOG_DEFAULT, "CybMemDriver " CYBMEM_VERSION ": " fmt, ##__VA_ARGS__)
#define CYBMEM_ERR(fmt, ...) \
    os_log_error(OS_LOG_DEFAULT, "CybMemDriver " CYBMEM_VERSION ": " fmt, ##__VA_ARGS__)
