// session.cpp -- the protocol state machine behind the DEXT's user client.
#include "session.hpp"

#include <string.h>

#include "alloc.hpp"
#include "checksum.hpp"

namespace unimem {
namespace dext {

void Session::init(const SessionConfig &config, const PlatformOps *ops, void *ctx) {
    memset(static_cast<void *>(this), 0, sizeof(*this));
    config_ = config;
    ops_ = ops;
    ctx_ = ctx;
    // Handles start at 1 and are never reused within a session, so a stale
    // handle can only miss, never hit someone else's range.
    next_handle_ = 1;
}

Status Session::handle(uint16_t selector, const void *request, size_t request_length,
                       ReplyBuffer *reply, size_t *reply_length) {
    Status st;
    switch (selector) {
    case UNIMEM_SELECTOR_HANDSHAKE:
        st = handshake(request, request_length, reply, reply_length);
        break;
    case UNIMEM_SELECTOR_PREPARE:
    case UNIMEM_SELECTOR_SEGMENTS:
    case UNIMEM_SELECTOR_COMPLETE:
    case UNIMEM_SELECTOR_CHECKSUM:
        if (!handshaken_) {
            // The client must learn the version and address kind first.
            st = UNIMEM_IO_RETURN_NOT_READY;
        } else if (selector == UNIMEM_SELECTOR_PREPARE) {
            st = prepare(request, request_length, reply, reply_length);
        } else if (selector == UNIMEM_SELECTOR_SEGMENTS) {
            st = segments(request, request_length, reply, reply_length);
        } else if (selector == UNIMEM_SELECTOR_COMPLETE) {
            st = complete(request, request_length, reply, reply_length);
        } else {
            st = checksum(request, request_length, reply, reply_length);
        }
        break;
    default:
        st = UNIMEM_IO_RETURN_UNSUPPORTED;
        break;
    }
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        build_error(selector, st, 0, &reply->error);
        *reply_length = sizeof(unimem_header);
    }
    return st;
}

Status Session::handshake(const void *request, size_t length, ReplyBuffer *reply, size_t *out) {
    HandshakeArgs args;
    uint16_t version = 0;
    Status st = decode_handshake(request, length, &args);
    if (st == UNIMEM_IO_RETURN_SUCCESS) {
        st = negotiate_version(args, &version);
    }
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    handshaken_ = true;
    build_handshake_reply(version, config_.address_kind, config_.limits, config_.server_version,
                          &reply->handshake);
    *out = sizeof(unimem_handshake_reply);
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status Session::prepare(const void *request, size_t length, ReplyBuffer *reply, size_t *out) {
    PrepareArgs args;
    Status st = decode_prepare(request, length, config_.limits, &args);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    Prepared *p = find_mut(0);
    if (p == nullptr) {
        return UNIMEM_IO_RETURN_NO_RESOURCES;
    }
    if (config_.budget == nullptr) {
        return UNIMEM_IO_RETURN_ERROR;
    }
    // Before any platform call: a refused range wires nothing.
    if (!config_.budget->take(args.length)) {
        return UNIMEM_IO_RETURN_NO_RESOURCES;
    }
    void *buffer = nullptr;
    st = ops_->create_buffer(ctx_, args.start_va, args.length, &buffer);
    if (st == UNIMEM_IO_RETURN_SUCCESS && buffer == nullptr) {
        st = UNIMEM_IO_RETURN_ERROR;
    }
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        config_.budget->give_back(args.length);
        return st;
    }
    // From here on release_prepared gives the bytes back.
    p->budgeted = args.length;
    p->buffer = buffer;
    p->length = args.length;
    p->surface_id = args.surface_id;
    st = prepare_range(p);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        release_prepared(p);
        return st;
    }
    p->handle = next_handle_++;
    st = pack_segments(p->segments, UNIMEM_SELECTOR_PREPARE, p->handle, 0,
                       config_.limits.page_size, config_.address_kind, &reply->segments);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        release_prepared(p);
        return st;
    }
    *out = sizeof(unimem_segments_reply);
    return UNIMEM_IO_RETURN_SUCCESS;
}

// Resolves [0, p->length) of p->buffer, one DMA command per step.
//
// PrepareForDMA returns at most kSegmentsPerPrepare segments and, when the
// range needs more, stops there and still reports success: only the sum of
// the segment lengths shows that the tail is missing. The command is then
// prepared (wired, and mapped if the device has a mapper) for more than its
// segments describe, so it is completed and redone for exactly the bytes
// the segments covered; the next command starts where they end. Every
// command kept therefore describes its whole preparation, and no two
// commands prepare the same bytes.
Status Session::prepare_range(Prepared *p) {
    uint64_t pos = 0;
    while (pos < p->length) {
        uint64_t want = p->length - pos;
        for (unsigned attempt = 0;; attempt++) {
            if (attempt == kMaxShrinkAttempts) {
                return UNIMEM_IO_RETURN_ERROR;
            }
            AddressSegment segs[kSegmentsPerPrepare];
            memset(segs, 0, sizeof(segs));
            uint32_t count = kSegmentsPerPrepare;
            void *command = nullptr;
            Status st =
                ops_->prepare_command(ctx_, p->buffer, pos, want, segs, &count, &command);
            if (st != UNIMEM_IO_RETURN_SUCCESS) {
                if (command != nullptr) {
                    ops_->complete_command(ctx_, command);
                }
                return st;
            }
            if (command == nullptr) {
                return UNIMEM_IO_RETURN_ERROR;
            }
            uint64_t sum = 0;
            bool sane = count > 0 && count <= kSegmentsPerPrepare;
            for (uint32_t i = 0; sane && i < count; i++) {
                const AddressSegment &s = segs[i];
                sane = s.length != 0 && s.address + s.length >= s.address &&
                       sum + s.length >= sum;
                sum += s.length;
            }
            if (!sane || sum > want) {
                ops_->complete_command(ctx_, command);
                return UNIMEM_IO_RETURN_ERROR;
            }
            if (sum < want) {
                // Truncated: redo this step for exactly what was described.
                ops_->complete_command(ctx_, command);
                want = sum;
                continue;
            }
            st = keep_command(p, command);
            if (st != UNIMEM_IO_RETURN_SUCCESS) {
                ops_->complete_command(ctx_, command);
                return st;
            }
            for (uint32_t i = 0; i < count; i++) {
                st = p->segments.append(segs[i].address, segs[i].length);
                if (st != UNIMEM_IO_RETURN_SUCCESS) {
                    return st;
                }
            }
            pos += sum;
            break;
        }
    }
    return p->segments.total() == p->length ? UNIMEM_IO_RETURN_SUCCESS : UNIMEM_IO_RETURN_ERROR;
}

Status Session::keep_command(Prepared *p, void *command) {
    if (p->command_count == p->command_capacity) {
        size_t grown = p->command_capacity == 0 ? 8 : p->command_capacity * 2;
        void **bigger = static_cast<void **>(allocate_zeroed(grown * sizeof(void *)));
        if (bigger == nullptr) {
            return UNIMEM_IO_RETURN_NO_MEMORY;
        }
        if (p->command_count > 0) {
            memcpy(bigger, p->commands, p->command_count * sizeof(void *));
        }
        release(p->commands, p->command_capacity * sizeof(void *));
        p->commands = bigger;
        p->command_capacity = grown;
    }
    p->commands[p->command_count++] = command;
    return UNIMEM_IO_RETURN_SUCCESS;
}

void Session::release_prepared(Prepared *p) {
    // Newest first, the reverse of preparation.
    while (p->command_count > 0) {
        ops_->complete_command(ctx_, p->commands[--p->command_count]);
    }
    release(p->commands, p->command_capacity * sizeof(void *));
    if (p->buffer != nullptr) {
        ops_->release_buffer(ctx_, p->buffer);
    }
    // Only now, with every command completed: the bytes are unwired.
    if (p->budgeted != 0) {
        config_.budget->give_back(p->budgeted);
    }
    p->segments.reset();
    memset(static_cast<void *>(p), 0, sizeof(*p));
}

Status Session::segments(const void *request, size_t length, ReplyBuffer *reply, size_t *out) {
    SegmentsArgs args;
    Status st = decode_segments(request, length, &args);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    Prepared *p = find_mut(args.handle);
    if (args.handle == 0 || p == nullptr) {
        return UNIMEM_IO_RETURN_NOT_FOUND;
    }
    st = pack_segments(p->segments, UNIMEM_SELECTOR_SEGMENTS, p->handle, args.continuation,
                       config_.limits.page_size, config_.address_kind, &reply->segments);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    *out = sizeof(unimem_segments_reply);
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status Session::complete(const void *request, size_t length, ReplyBuffer *reply, size_t *out) {
    CompleteArgs args;
    Status st = decode_complete(request, length, &args);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    Prepared *p = find_mut(args.handle);
    if (args.handle == 0 || p == nullptr) {
        return UNIMEM_IO_RETURN_NOT_FOUND;
    }
    uint64_t released = p->length;
    release_prepared(p);
    build_complete_reply(args.handle, released, &reply->complete);
    *out = sizeof(unimem_complete_reply);
    return UNIMEM_IO_RETURN_SUCCESS;
}

Status Session::checksum(const void *request, size_t length, ReplyBuffer *reply, size_t *out) {
    ChecksumArgs args;
    Status st = decode_checksum(request, length, &args);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    Prepared *p = find_mut(args.handle);
    if (args.handle == 0 || p == nullptr) {
        return UNIMEM_IO_RETURN_NOT_FOUND;
    }
    if (!range_within(args.offset, args.length, p->length)) {
        return UNIMEM_IO_RETURN_BAD_ARGUMENT;
    }
    const uint8_t *bytes = nullptr;
    uint64_t mapped = 0;
    void *mapping = nullptr;
    st = ops_->map_buffer(ctx_, p->buffer, &bytes, &mapped, &mapping);
    if (st != UNIMEM_IO_RETURN_SUCCESS) {
        return st;
    }
    if (bytes == nullptr || !range_within(args.offset, args.length, mapped)) {
        ops_->unmap_buffer(ctx_, mapping);
        return UNIMEM_IO_RETURN_VM_ERROR;
    }
    uint64_t value =
        checksum_update(kChecksumInit, bytes + args.offset, static_cast<size_t>(args.length));
    ops_->unmap_buffer(ctx_, mapping);
    build_checksum_reply(args, value, &reply->checksum);
    *out = sizeof(unimem_checksum_reply);
    return UNIMEM_IO_RETURN_SUCCESS;
}

void Session::close() {
    for (size_t i = 0; i < kMaxPrepared; i++) {
        if (slots_[i].handle != 0 || slots_[i].buffer != nullptr) {
            release_prepared(&slots_[i]);
        }
    }
}

size_t Session::prepared_count() const {
    size_t n = 0;
    for (size_t i = 0; i < kMaxPrepared; i++) {
        n += slots_[i].handle != 0 ? 1 : 0;
    }
    return n;
}

const Prepared *Session::find(uint64_t handle) const {
    if (handle == 0) {
        return nullptr;
    }
    for (size_t i = 0; i < kMaxPrepared; i++) {
        if (slots_[i].handle == handle) {
            return &slots_[i];
        }
    }
    return nullptr;
}

// With handle 0, a free slot (one that holds nothing, not even a range
// being prepared).
Prepared *Session::find_mut(uint64_t handle) {
    for (size_t i = 0; i < kMaxPrepared; i++) {
        Prepared &s = slots_[i];
        if (s.handle == handle && (handle != 0 || s.buffer == nullptr)) {
            return &s;
        }
    }
    return nullptr;
}

}  // namespace dext
}  // namespace unimem
