// protocol.cpp -- request checks and reply builders.
#include "protocol.hpp"

#include <string.h>

namespace unimem {
namespace dext {
namespace {

void fill_header(uint16_t selector, Status status, uint32_t detail, unimem_header *h) {
    h->magic = UNIMEM_MAGIC;
    h->version = UNIMEM_VERSION;
    h->selector = selector;
    h->status = status;
    h->detail = detail;
}

// Copies an exactly sized message into `out` and checks its header.
template <typename T>
Status read_request(const void *message, size_t length, uint16_t selector, T *out) {
    if (message == nullptr || length != sizeof(T)) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    memcpy(out, message, sizeof(T));
    const unimem_header &h = out->header;
    if (h.magic != UNIMEM_MAGIC || h.selector != selector) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    if (selector != UNIMEM_SELECTOR_HANDSHAKE && h.version != UNIMEM_VERSION) {
        return UNIMEM_IO_RETURN_UNSUPPORTED;
    }
    if (h.status != 0 || h.detail != 0) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    return UNIMEM_IO_RETURN_SUCCESS;
}

}  // namespace

Status decode_handshake(const void *message, size_t length, HandshakeArgs *out) {
    unimem_handshake_request r;
    Status st = read_request(message, length, UNIMEM_SELECTOR_HANDSHAKE, &r);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    if (r.reserved0 != 0 || r.reserved1 != 0 || r.min_version > r.max_version) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    out->min_version = r.min_version;
    out->max_version = r.max_version;
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status decode_prepare(const void *message, size_t length, const Limits &limits,
                      PrepareArgs *out) {
    unimem_prepare_request r;
    Status st = read_request(message, length, UNIMEM_SELECTOR_PREPARE, &r);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    if (r.options != 0 || r.length == 0 || r.length > limits.max_prepare_bytes ||
        r.client_va == 0) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    uint64_t start = r.client_va + r.offset;
    if (start < r.client_va || start + r.length < start) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    uint64_t page_mask = limits.page_size - 1;
    if ((start & page_mask) != 0 || (r.length & page_mask) != 0) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    out->offset = r.offset;
    out->length = r.length;
    out->client_va = r.client_va;
    out->surface_id = r.surface_id;
    out->start_va = start;
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status decode_segments(const void *message, size_t length, SegmentsArgs *out) {
    unimem_segments_request r;
    Status st = read_request(message, length, UNIMEM_SELECTOR_SEGMENTS, &r);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    out->handle = r.handle;
    out->continuation = r.continuation;
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status decode_complete(const void *message, size_t length, CompleteArgs *out) {
    unimem_complete_request r;
    Status st = read_request(message, length, UNIMEM_SELECTOR_COMPLETE, &r);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    if (r.reserved != 0) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    out->handle = r.handle;
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status decode_checksum(const void *message, size_t length, ChecksumArgs *out) {
    unimem_checksum_request r;
    Status st = read_request(message, length, UNIMEM_SELECTOR_CHECKSUM, &r);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    if (r.reserved != 0 || (r.offset % 8) != 0 || (r.length % 8) != 0 ||
        r.offset + r.length < r.offset) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    out->handle = r.handle;
    out->offset = r.offset;
    out->length = r.length;
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status negotiate_version(const HandshakeArgs &args, uint16_t *chosen) {
    if (args.min_version > UNIMEM_VERSION || args.max_version < UNIMEM_VERSION) {
        return UNIMEM_IO_RETURN_UNSUPPORTED;
    }
    *chosen = UNIMEM_VERSION;
    return UNIMEM_IO_RETURN_SUCCESS;
}

bool range_within(uint64_t offset, uint64_t length, uint64_t total) {
    return offset <= total && length <= total - offset;
}

void build_error(uint16_t selector, Status status, uint32_t detail, unimem_header *out) {
    fill_header(selector, status, detail, out);
}

void build_handshake_reply(uint16_t version, uint32_t address_kind, const Limits &limits,
                           const char *server_version, unimem_handshake_reply *out) {
    memset(out, 0, sizeof(*out));
    fill_header(UNIMEM_SELECTOR_HANDSHAKE, UNIMEM_IO_RETURN_SUCCESS, 0, &out->header);
    out->version = version;
    out->address_kind = address_kind;
    out->page_size = limits.page_size;
    out->max_segments_per_reply = UNIMEM_SEGMENTS_PER_REPLY;
    out->max_prepare_bytes = limits.max_prepare_bytes;
    // Keep at least one NUL so the field is always a terminated string.
    for (size_t i = 0; server_version != nullptr && i + 1 < UNIMEM_SERVER_VERSION_LEN &&
                       server_version[i] != '\0';
         i++) {
        out->server_version[i] = static_cast<uint8_t>(server_version[i]);
    }
}

void build_complete_reply(uint64_t handle, uint64_t released_bytes, unimem_complete_reply *out) {
    memset(out, 0, sizeof(*out));
    fill_header(UNIMEM_SELECTOR_COMPLETE, UNIMEM_IO_RETURN_SUCCESS, 0, &out->header);
    out->handle = handle;
    out->released_bytes = released_bytes;
}

void build_checksum_reply(const ChecksumArgs &args, uint64_t checksum,
                          unimem_checksum_reply *out) {
    memset(out, 0, sizeof(*out));
    fill_header(UNIMEM_SELECTOR_CHECKSUM, UNIMEM_IO_RETURN_SUCCESS, 0, &out->header);
    out->handle = args.handle;
    out->offset = args.offset;
    out->length = args.length;
    out->checksum = checksum;
    out->algorithm = UNIMEM_CHECKSUM_FNV1A64_WORDS;
}

Status pack_segments(const SegmentList &list, uint16_t selector, uint64_t handle,
                     uint64_t continuation, uint64_t page_size, uint32_t address_kind,
                     unimem_segments_reply *out) {
    uint64_t total = list.total();
    if (continuation > total) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    memset(out, 0, sizeof(*out));
    fill_header(selector, UNIMEM_IO_RETURN_SUCCESS, 0, &out->header);
    out->handle = handle;
    out->total_length = total;
    out->start = continuation;
    out->page_size = page_size;
    out->address_kind = address_kind;

    uint64_t pos = continuation;
    uint32_t n = 0;
    if (pos < total) {
        for (size_t i = list.find(pos); i < list.count() && n < UNIMEM_SEGMENTS_PER_REPLY; i++) {
            const Run &run = list.at(i);
            uint64_t skip = pos - run.offset;  // non-zero only for the first run
            out->segments[n].address = run.address + skip;
            out->segments[n].length = run.length - skip;
            pos += run.length - skip;
            n++;
        }
    }
    out->count = n;
    out->next = pos;
    return UNIMEM_IO_RETURN_SUCCESS;
}

}  // namespace dext
}  // namespace unimem
