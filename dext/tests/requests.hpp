// requests.hpp -- well-formed requests for the tests to send and mutate.
#pragma once

#include <string.h>

#include "unimem_wire.h"

inline unimem_header request_header(uint16_t selector) {
    unimem_header h;
    memset(&h, 0, sizeof(h));
    h.magic = UNIMEM_MAGIC;
    h.version = UNIMEM_VERSION;
    h.selector = selector;
    return h;
}

inline unimem_handshake_request make_handshake(uint16_t min, uint16_t max) {
    unimem_handshake_request r;
    memset(&r, 0, sizeof(r));
    r.header = request_header(UNIMEM_SELECTOR_HANDSHAKE);
    r.min_version = min;
    r.max_version = max;
    return r;
}

inline unimem_prepare_request make_prepare(uint64_t offset, uint64_t length, uint64_t va,
                                           uint32_t surface_id) {
    unimem_prepare_request r;
    memset(&r, 0, sizeof(r));
    r.header = request_header(UNIMEM_SELECTOR_PREPARE);
    r.offset = offset;
    r.length = length;
    r.client_va = va;
    r.surface_id = surface_id;
    return r;
}

inline unimem_segments_request make_segments(uint64_t handle, uint64_t continuation) {
    unimem_segments_request r;
    memset(&r, 0, sizeof(r));
    r.header = request_header(UNIMEM_SELECTOR_SEGMENTS);
    r.handle = handle;
    r.continuation = continuation;
    return r;
}

inline unimem_complete_request make_complete(uint64_t handle) {
    unimem_complete_request r;
    memset(&r, 0, sizeof(r));
    r.header = request_header(UNIMEM_SELECTOR_COMPLETE);
    r.handle = handle;
    return r;
}

inline unimem_checksum_request make_checksum(uint64_t handle, uint64_t offset, uint64_t length) {
    unimem_checksum_request r;
    memset(&r, 0, sizeof(r));
    r.header = request_header(UNIMEM_SELECTOR_CHECKSUM);
    r.handle = handle;
    r.offset = offset;
    r.length = length;
    return r;
}
